"""Available-to-promise arithmetic for one position (pure, no imports of the rest)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChannelLimit:
    """What one channel may promise at one position, resolved from the channel's rules."""

    safety_units: int = 0
    """Units kept back from this channel."""
    safety_percent: float = 0.0
    """Share of the sellable units kept back; the larger of the two safeties applies."""
    cap_percent: float = 100.0
    """At most this share of the sellable units may be promised to the channel in total."""

    def safety(self, sellable: int) -> int:
        return max(self.safety_units, math.ceil(sellable * self.safety_percent / 100))

    def promisable(self, sellable: int, reserved: int, committed: int, channel_used: int) -> int:
        """Units this channel may still hold here: free stock after safety, within the cap."""
        free = sellable - reserved - committed - self.safety(sellable)
        cap = math.floor(sellable * self.cap_percent / 100) - channel_used
        return max(0, min(free, cap))


NO_LIMIT = ChannelLimit()
