"""TLS on the API, with real certificates from `omnistock certs dev`: a client that trusts the CA
gets answers (health and reflection too), one in plain text or trusting another CA gets none;
with a client CA only a client showing a certificate it signed gets in; the API key rides on
every call, over TLS and in plain text; the CLI, every gateway process and `omnistock serve`
itself follow the same settings, and serve refuses to listen beyond loopback without them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from omnistock.cli.certs import DevCertificates, make_dev_certificates
from omnistock.client import (
    API_KEY_ENV,
    API_KEY_FILE_ENV,
    TLS_CA_ENV,
    TLS_CERT_ENV,
    TLS_KEY_ENV,
    Credentials,
    OmnistockClient,
    OmnistockRpcError,
    level,
)
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, free_port
from omnistock.gateway.runtime.service import ADMIN_KEY_FILE
from omnistock.loadtest.peakday import locust_env
from omnistock.protos.gen.omnistock.v1 import inventory_pb2, inventory_pb2_grpc
from tests.conftest import services
from tests.integration.conftest import NODES

OMNISTOCK = str(Path(sys.executable).parent / "omnistock")
CONNECTION_ENVS = (TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV, API_KEY_ENV, API_KEY_FILE_ENV, "OMNISTOCK_TARGET")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return make_dev_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    """Certificates of another CA, with the same names."""
    return make_dev_certificates(tmp_path_factory.mktemp("other-certs"))


@pytest_asyncio.fixture(scope="module")
async def tls_service(
    redis_server: EmbeddedRedis, ray_runtime: None, certs: DevCertificates
) -> AsyncIterator[Any]:
    """TLS, no client certificate asked for, no keys."""
    async with services(redis_server.url) as start:
        yield await start(tls_cert=certs.server_cert, tls_key=certs.server_key, shards=1)


@pytest_asyncio.fixture(scope="module")
async def mtls_service(
    redis_server: EmbeddedRedis,
    ray_runtime: None,
    certs: DevCertificates,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Any]:
    """Mutual TLS and API keys (the admin key in its data dir)."""
    async with services(redis_server.url) as start:
        yield await start(
            tls_cert=certs.server_cert,
            tls_key=certs.server_key,
            client_ca=certs.ca_cert,
            auth="keys",
            data_dir=tmp_path_factory.mktemp("mtls-data"),
            shards=1,
        )


def admin_key(service: Any) -> str:
    return (service.config.data_dir / ADMIN_KEY_FILE).read_text().strip()


def target(service: Any, host: str = "127.0.0.1") -> str:
    return f"{host}:{service.port}"


async def refused_code(client: OmnistockClient) -> grpc.StatusCode:
    async with client:
        with pytest.raises(OmnistockRpcError) as refused:
            await client.list_nodes()
    return refused.value.code


async def test_a_client_trusting_the_ca_gets_answers_health_and_reflection(
    tls_service: Any, certs: DevCertificates
) -> None:
    for host in ("127.0.0.1", "localhost"):
        async with OmnistockClient(target(tls_service, host), tls_ca=certs.ca_cert) as client:
            await client.put_nodes(NODES)
            assert {node.node_id for node in await client.list_nodes()} == {n.node_id for n in NODES}
            await client.set_stock([level("TLS-SKU", "DC-1", 7)])
            answer = await client.availability(["TLS-SKU"], consistent=True)
            assert answer.skus[0].available == 7
            health = await health_pb2_grpc.HealthStub(client.channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(client.channel)
            replies = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            names = [s.name async for reply in replies for s in reply.list_services_response.service]
            assert "omnistock.v1.InventoryService" in names


async def test_plain_text_and_a_client_trusting_another_ca_get_nothing(
    tls_service: Any, other: DevCertificates
) -> None:
    assert await refused_code(OmnistockClient(target(tls_service))) == grpc.StatusCode.UNAVAILABLE
    other_ca = OmnistockClient(target(tls_service), tls_ca=other.ca_cert)
    assert await refused_code(other_ca) == grpc.StatusCode.UNAVAILABLE


async def test_the_server_name_is_checked_and_may_be_named(tls_service: Any, certs: DevCertificates) -> None:
    # Reached at an address whose name the certificate does not hold, as through a load balancer.
    named = OmnistockClient(target(tls_service), tls_ca=certs.ca_cert, server_name="localhost")
    async with named:
        assert await named.list_nodes() is not None
    wrong = OmnistockClient(target(tls_service), tls_ca=certs.ca_cert, server_name="inventory.example")
    assert await refused_code(wrong) == grpc.StatusCode.UNAVAILABLE


async def test_with_a_client_ca_only_a_client_certificate_it_signed_gets_in(
    mtls_service: Any, certs: DevCertificates, other: DevCertificates
) -> None:
    key = admin_key(mtls_service)
    no_certificate = OmnistockClient(target(mtls_service), tls_ca=certs.ca_cert, api_key=key)
    assert await refused_code(no_certificate) == grpc.StatusCode.UNAVAILABLE
    foreign = OmnistockClient(
        target(mtls_service),
        tls_ca=certs.ca_cert,
        client_cert=other.client_cert,
        client_key=other.client_key,
        api_key=key,
    )
    assert await refused_code(foreign) == grpc.StatusCode.UNAVAILABLE
    mutual: dict[str, Any] = {
        "tls_ca": certs.ca_cert,
        "client_cert": certs.client_cert,
        "client_key": certs.client_key,
    }
    # A certificate alone is not a key: the guard still asks for one.
    assert (
        await refused_code(OmnistockClient(target(mtls_service), **mutual)) == grpc.StatusCode.UNAUTHENTICATED
    )
    async with OmnistockClient(target(mtls_service), **mutual, api_key=key) as client:
        await client.put_nodes(NODES)
        # The key rides on unary, client-streaming and server-streaming calls alike.
        loaded = await client.load_stock([level("MTLS-SKU", "DC-1", 3)])
        assert loaded.applied == 1
        watch = client.watch_availability(["MTLS-SKU"])
        first = await anext(watch)
        await watch.aclose()  # type: ignore[attr-defined]
        assert [c.sku for c in first.changes] == ["MTLS-SKU"]
    # The blocking channel Locust's users take, with the same settings from the environment.
    settings = Credentials.from_env(Credentials(**mutual, api_key=key).env())
    with settings.channel(target(mtls_service)) as channel:
        nodes = await asyncio.to_thread(
            inventory_pb2_grpc.InventoryServiceStub(channel).ListNodes,
            inventory_pb2.ListNodesRequest(),
            timeout=10,
        )
        assert {n.node_id for n in nodes.nodes} == {n.node_id for n in NODES}


async def test_the_key_rides_on_every_call_in_plain_text_too(make_service: Any, tmp_path: Path) -> None:
    service = await make_service(auth="keys", data_dir=tmp_path, shards=1)
    key = admin_key(service)
    assert await refused_code(OmnistockClient(target(service))) == grpc.StatusCode.UNAUTHENTICATED
    wrong = OmnistockClient(target(service), api_key="omk_not-a-key")
    assert await refused_code(wrong) == grpc.StatusCode.UNAUTHENTICATED
    async with OmnistockClient(target(service), api_key=key) as client:
        await client.put_nodes(NODES)
        loaded = await client.load_stock([level("PLAIN-SKU", "DC-1", 5)])
        assert loaded.applied == 1
        watch = client.watch_availability(["PLAIN-SKU"])
        first = await anext(watch)
        await watch.aclose()  # type: ignore[attr-defined]
        assert [c.sku for c in first.changes] == ["PLAIN-SKU"]
    # The blocking channel Locust's users take.
    with Credentials(api_key=key).channel(target(service)) as channel:
        nodes = await asyncio.to_thread(
            inventory_pb2_grpc.InventoryServiceStub(channel).ListNodes,
            inventory_pb2.ListNodesRequest(),
            timeout=10,
        )
        assert {n.node_id for n in nodes.nodes} == {n.node_id for n in NODES}
    with Credentials().channel(target(service)) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            await asyncio.to_thread(
                inventory_pb2_grpc.InventoryServiceStub(channel).ListNodes,
                inventory_pb2.ListNodesRequest(),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def cli(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`omnistock ARGS` in its own process: exit status, stdout, stderr."""
    clean = {name: value for name, value in os.environ.items() if name not in CONNECTION_ENVS}
    process = await asyncio.create_subprocess_exec(
        OMNISTOCK,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean | (env or {}),
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_connects_with_tls_a_client_certificate_and_a_key(
    mtls_service: Any, certs: DevCertificates, tmp_path: Path
) -> None:
    key = admin_key(mtls_service)
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    where = ["--target", target(mtls_service)]
    mutual = [
        "--tls-ca",
        str(certs.ca_cert),
        "--tls-cert",
        str(certs.client_cert),
        "--tls-key",
        str(certs.client_key),
    ]
    async with OmnistockClient(target(mtls_service), tls_ca=certs.ca_cert, client_cert=certs.client_cert,
                               client_key=certs.client_key, api_key=key) as client:  # fmt: skip
        await client.put_nodes(NODES)
    by_flags, by_env, no_key, wrong_key = await asyncio.gather(
        cli(["nodes", "list", *where, *mutual, "--api-key-file", str(key_file), "--json"]),
        cli(
            ["nodes", "list", *where, "--json"],
            {
                TLS_CA_ENV: str(certs.ca_cert),
                TLS_CERT_ENV: str(certs.client_cert),
                TLS_KEY_ENV: str(certs.client_key),
                API_KEY_ENV: key,
            },
        ),
        cli(["nodes", "list", *where, *mutual]),
        cli(["nodes", "list", *where, *mutual, "--api-key", "omk_wrong-secret-0123"]),
    )
    for code, out, err in (by_flags, by_env):
        assert code == 0, err
        assert {n["node_id"] for n in json.loads(out)["nodes"]} == {n.node_id for n in NODES}
    code, _, err = no_key
    assert code == 1
    assert (
        "UNAUTHENTICATED" in err
        and "pass --api-key-file FILE (or --api-key KEY), or set OMNISTOCK_API_KEY" in err
    )
    code, out, err = wrong_key
    assert code == 1 and "does not know this API key" in err
    assert "omk_wrong-secret-0123" not in out + err  # a key is never printed


async def test_the_cli_says_which_tls_setting_to_fix(
    mtls_service: Any, tls_service: Any, certs: DevCertificates, other: DevCertificates
) -> None:
    plain, wrong_ca, no_certificate, tls_to_plain_text = await asyncio.gather(
        cli(["nodes", "list", "--target", target(tls_service)]),
        cli(["nodes", "list", "--target", target(tls_service), "--tls-ca", str(other.ca_cert)]),
        cli(["nodes", "list", "--target", target(mtls_service), "--tls-ca", str(certs.ca_cert)]),
        cli(
            [
                "nodes",
                "list",
                "--target",
                f"127.0.0.1:{await plain_text_port()}",
                "--tls-ca",
                str(certs.ca_cert),
            ]
        ),
    )
    for (code, _, err), hint in (
        (plain, "if it serves TLS, pass --tls-ca FILE"),
        (wrong_ca, "the TLS handshake failed: check --tls-ca"),
        (no_certificate, "pass --tls-cert FILE --tls-key FILE"),
        (tls_to_plain_text, "the service may serve plain text; leave out --tls-ca"),
    ):
        assert code == 1, err
        assert "error: UNAVAILABLE: cannot connect to omnistock at" in err and hint in err, err


async def plain_text_port() -> int:
    """A port that speaks plain-text gRPC (a bare server, for the TLS client to fail against)."""
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    PLAIN_SERVERS.append(server)
    return port


PLAIN_SERVERS: list[grpc.aio.Server] = []


@pytest_asyncio.fixture(autouse=True)
async def stop_plain_servers() -> AsyncIterator[None]:
    yield
    while PLAIN_SERVERS:
        await PLAIN_SERVERS.pop().stop(0)


async def test_cli_usage_errors_name_the_flag_and_never_the_key(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    half, missing_ca, both_keys, empty_file = await asyncio.gather(
        cli(["nodes", "list", "--tls-cert", str(tmp_path / "c.pem")]),
        cli(["nodes", "list", "--tls-ca", str(tmp_path / "nowhere.pem")]),
        cli(["nodes", "list", "--api-key", "omk_secret-do-not-print", "--api-key-file", str(empty)]),
        cli(["nodes", "list", "--api-key-file", str(empty)]),
    )
    assert half[0] == 2 and "--tls-cert needs --tls-key" in half[2]
    assert missing_ca[0] == 2 and f"cannot read --tls-ca {tmp_path / 'nowhere.pem'}" in missing_ca[2]
    assert both_keys[0] == 2 and "not both" in both_keys[2] and "omk_secret" not in both_keys[2]
    assert empty_file[0] == 2 and "holds no API key" in empty_file[2]


def test_locust_gets_the_targets_settings_and_none_the_shell_had(
    certs: DevCertificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_FILE_ENV, "/somewhere/else.key")
    monkeypatch.setenv(TLS_CERT_ENV, "/somewhere/else.pem")
    given = Credentials(tls_ca=certs.ca_cert, api_key="omk_for-locust")
    env = locust_env(given)
    assert Credentials.from_env(env) == given
    assert API_KEY_FILE_ENV not in env and TLS_CERT_ENV not in env
    assert env["PATH"] == os.environ["PATH"]
    assert Credentials.from_env(locust_env(Credentials())) == Credentials()


@pytest.mark.slow
async def test_bench_measures_a_service_behind_mutual_tls_and_keys(
    mtls_service: Any, certs: DevCertificates
) -> None:
    key_file = mtls_service.config.data_dir / ADMIN_KEY_FILE
    short = [
        "--seconds",
        "0.5",
        "--warmup",
        "0.1",
        "--concurrency",
        "2",
        "--skus",
        "50",
        "--only",
        "reserve_1",
    ]
    mutual = ["--tls-ca", str(certs.ca_cert), "--tls-cert", str(certs.client_cert)]
    mutual += ["--tls-key", str(certs.client_key), "--api-key-file", str(key_file)]
    code, out, err = await cli(["bench", "--target", target(mtls_service), *short, "--json", *mutual])
    assert code == 0, err[-3000:]
    reserves = next(s for s in json.loads(out)["scenarios"] if s["key"] == "reserve_1")
    assert reserves["calls"] > 0 and reserves["errors"] == 0


@pytest.mark.slow
async def test_every_gateway_process_serves_tls(
    redis_server: EmbeddedRedis, ray_runtime: None, certs: DevCertificates
) -> None:
    async with services(redis_server.url) as start:
        service = await start(tls_cert=certs.server_cert, tls_key=certs.server_key, shards=1, gateways=2)
        own = [("grpc.use_local_subchannel_pool", 1)]  # a connection each: the kernel spreads them
        trusting = [OmnistockClient(target(service), options=own, tls_ca=certs.ca_cert) for _ in range(16)]
        plain = [OmnistockClient(target(service), options=own) for _ in range(16)]
        answers = await asyncio.gather(*(c.list_nodes() for c in trusting))
        assert len(answers) == 16
        codes = await asyncio.gather(*(refused_code(c) for c in plain))
        assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
        for client in trusting:
            await client.close()


def test_serve_refuses_to_listen_beyond_loopback_without_tls_and_keys(
    tmp_path: Path, certs: DevCertificates
) -> None:
    data_dir = tmp_path / "var"
    base = [OMNISTOCK, "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(data_dir)]
    tls = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    for extra, says in (
        ([], ["(TLS missing)", "add --tls-cert FILE --tls-key FILE", "omnistock certs dev", "--insecure"]),
        ([*tls, "--auth", "off"], ["(API keys missing)", "leave out --auth off"]),
        (["--tls-cert", str(certs.server_cert)], ["--tls-cert needs --tls-key"]),
    ):
        began = time.monotonic()
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        for text in says:
            assert text in done.stderr
        assert not data_dir.exists()  # refused before anything started
        assert time.monotonic() - began < 30


async def wait_for_line(log: Path, process: subprocess.Popen[bytes], text: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while text not in (content := log.read_text(errors="replace")):
        assert process.poll() is None, content[-3000:]
        assert time.monotonic() < deadline, content[-3000:]
        await asyncio.sleep(0.3)
    return content


@pytest.mark.slow
async def test_serve_off_loopback_with_mutual_tls_and_keys_loads_its_demo_and_answers(
    tmp_path: Path, certs: DevCertificates
) -> None:
    port, data_dir, log = free_port(), tmp_path / "var", tmp_path / "serve.log"
    argv = [OMNISTOCK, "serve", "--host", "0.0.0.0", "--port", str(port), "--metrics-port", "0"]
    argv += ["--shards", "1", "--data-dir", str(data_dir), "--demo"]
    argv += [
        "--tls-cert",
        str(certs.server_cert),
        "--tls-key",
        str(certs.server_key),
        "--client-ca",
        str(certs.ca_cert),
    ]
    env = {**os.environ, "RAY_ADDRESS": ""}
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=sink, env=env, start_new_session=True)
    try:
        printed = await wait_for_line(log, process, "try: omnistock")
        assert f"TLS       on (clients must show a certificate signed by {certs.ca_cert})" in printed
        assert "API keys  required" in printed
        assert f"admin     key in {data_dir / ADMIN_KEY_FILE} (mode 0600" in printed
        assert "INSECURE" not in printed
        assert "demo: ready" in printed, printed[-3000:]  # through its own port: TLS, certificate, key
        mutual = ["--tls-ca", str(certs.ca_cert), "--tls-cert", str(certs.client_cert)]
        mutual += ["--tls-key", str(certs.client_key), "--api-key-file", str(data_dir / ADMIN_KEY_FILE)]
        code, out, err = await cli(
            ["availability", "SKU-00001", "--target", f"127.0.0.1:{port}", "--json", *mutual]
        )
        assert code == 0, err
        assert json.loads(out)["skus"][0]["sku"] == "SKU-00001"
        assert (await cli(["nodes", "list", "--target", f"127.0.0.1:{port}"]))[0] == 1  # plain text: refused
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
