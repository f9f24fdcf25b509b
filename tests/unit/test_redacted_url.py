"""Redis URLs printed in banners and logs never show a password, whatever their form."""

from __future__ import annotations

import pytest

from omnistock.gateway.runtime.redis_url import redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://app:secret@[::1]:6379/0", "redis://app:***@[::1]:6379/0"),
        (
            "rediss://:s%40c:ret@redis.example:6380/1?ssl_ca_certs=/ca.pem",
            "rediss://:***@redis.example:6380/1?ssl_ca_certs=/ca.pem",
        ),
        (
            "redis+cluster://:secret@10.0.1.1:6379,10.0.1.2:6379/",
            "redis+cluster://:***@10.0.1.1:6379,10.0.1.2:6379/",
        ),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://app@127.0.0.1:6379/0", "redis://app@127.0.0.1:6379/0"),
    ],
)
def test_the_password_is_never_shown(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert "secret" not in redacted(url)
