"""Available-to-promise arithmetic for one position (pure, no imports of the rest)."""

from __future__ import annotations

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
    future_supply: bool = False
    """Holds may also take expected inbound supply not yet promised (preorders, backorders)."""

    def safety(self, sellable: int) -> int:
        return max(self.safety_units, -(-max(0, sellable) * basis_points(self.safety_percent) // 10_000))

    def promisable(self, sellable: int, reserved: int, committed: int, channel_used: int) -> int:
        """Units this channel may still hold here: free stock after safety, within the cap."""
        free = sellable - reserved - committed - self.safety(sellable)
        cap = max(0, sellable) * basis_points(self.cap_percent) // 10_000 - channel_used
        return max(0, min(free, cap))


def basis_points(percent: float) -> int:
    """Percentages are exact to 0.01 %: shares are then counted in integers, so that
    18.4 % of 375 is 69 units, not 68.99999999999999."""
    return round(percent * 100)


def future_free(sellable: int, reserved: int, committed: int, inbound: int) -> int:
    """Expected supply not yet promised: inbound minus what is already promised beyond stock."""
    promised_beyond_stock = max(0, reserved + committed - sellable)
    return max(0, inbound - promised_beyond_stock)


NO_LIMIT = ChannelLimit()
