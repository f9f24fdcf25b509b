"""Redis URLs fit to print: banners and logs end up in places others read."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted(url: str) -> str:
    """`url` with its password replaced by ***. The hosts are kept as written: a cluster URL
    (`redis+cluster://:pw@host:port,host:port/`) names several."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))
