"""`omnistock certs dev`: the certificates verify (chain, names, key usage), keys stay private,
and nothing that exists is overwritten unless asked."""

from __future__ import annotations

import contextlib
import datetime
import io
import ipaddress
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from omnistock.cli.app import main
from omnistock.cli.certs import CertificatesExist, DevCertificates, make_dev_certificates

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def made(tmp_path: Path) -> DevCertificates:
    return make_dev_certificates(tmp_path / "certs", ["shop.example", "10.1.2.3"], now=NOW)


def verifier_store(made: DevCertificates) -> Store:
    return Store(certificates(made.ca_cert))


def test_the_server_certificate_verifies_for_every_name_it_was_made_for_and_no_other(
    made: DevCertificates,
) -> None:
    leaf, *chain = certificates(made.server_cert)
    assert [c.subject for c in chain] == [c.subject for c in certificates(made.ca_cert)]
    builder = PolicyBuilder().store(verifier_store(made)).time(NOW)
    names: list[x509.DNSName | x509.IPAddress] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("shop.example"),
        x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
    ]
    for name in names:
        path = builder.build_server_verifier(name).verify(leaf, chain)
        assert path[-1].subject == certificates(made.ca_cert)[0].subject
    for other in (x509.DNSName("evil.example"), x509.IPAddress(ipaddress.ip_address("10.1.2.4"))):
        with pytest.raises(VerificationError):
            builder.build_server_verifier(other).verify(leaf, chain)


def test_the_client_certificate_verifies_as_a_client_named_as_asked(tmp_path: Path) -> None:
    made = make_dev_certificates(tmp_path, client_name="store-app-42", now=NOW)
    (leaf,) = certificates(made.client_cert)
    verified = PolicyBuilder().store(verifier_store(made)).time(NOW).build_client_verifier().verify(leaf, [])
    assert verified.chain[-1].subject == certificates(made.ca_cert)[0].subject
    names = leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    assert [n.value for n in names] == ["store-app-42"]


def test_a_certificate_of_another_ca_does_not_verify(tmp_path: Path, made: DevCertificates) -> None:
    other = make_dev_certificates(tmp_path / "other", now=NOW)
    leaf, *chain = certificates(other.server_cert)
    verifier = (
        PolicyBuilder().store(verifier_store(made)).time(NOW).build_server_verifier(x509.DNSName("localhost"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(leaf, chain)  # its own CA comes along, but is not the one trusted


def test_each_certificate_says_what_it_may_do(made: DevCertificates) -> None:
    (ca,) = certificates(made.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and ca_usage.crl_sign

    server = certificates(made.server_cert)[0]
    client = certificates(made.client_cert)[0]
    for leaf in (server, client):
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
        assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
        assert leaf.issuer == ca.subject
    server_usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in server_usage
    client_usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(client_usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value != server_usage


def test_leaves_live_a_month_and_the_ca_a_year(made: DevCertificates) -> None:
    (ca,) = certificates(made.ca_cert)
    leaf = certificates(made.server_cert)[0]
    assert ca.not_valid_after_utc - NOW == datetime.timedelta(days=365)
    assert leaf.not_valid_after_utc - NOW == datetime.timedelta(days=30)
    assert made.expires == leaf.not_valid_after_utc
    assert leaf.not_valid_before_utc < NOW  # a peer whose clock is a little behind accepts it


def test_each_key_belongs_to_its_certificate(made: DevCertificates) -> None:
    for cert, key in (
        (made.ca_cert, made.ca_key),
        (made.server_cert, made.server_key),
        (made.client_cert, made.client_key),
    ):
        assert public_bytes(certificates(cert)[0].public_key()) == public_bytes(  # type: ignore[arg-type]
            private_key(key).public_key()
        )


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def test_keys_are_readable_by_their_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    with umask(0):
        made = make_dev_certificates(tmp_path)
    for path in (made.ca_key, made.server_key, made.client_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (made.ca_cert, made.server_cert, made.client_cert):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_existing_files_are_never_overwritten_unless_forced(tmp_path: Path) -> None:
    first = make_dev_certificates(tmp_path)
    before = {path: path.read_bytes() for path in first.files().values()}
    with pytest.raises(CertificatesExist) as refused:
        make_dev_certificates(tmp_path)
    assert sorted(refused.value.paths) == sorted(before)
    assert {path: path.read_bytes() for path in before} == before
    forced = make_dev_certificates(tmp_path, force=True)
    assert all(path.read_bytes() != before[path] for path in forced.files().values())
    assert stat.S_IMODE(forced.server_key.stat().st_mode) == 0o600


def test_one_file_in_the_way_stops_all_of_them(tmp_path: Path) -> None:
    (tmp_path / "client.key").write_text("mine\n")
    with pytest.raises(CertificatesExist) as refused:
        make_dev_certificates(tmp_path)
    assert refused.value.paths == [tmp_path / "client.key"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.key"]
    assert (tmp_path / "client.key").read_text() == "mine\n"


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_the_command_prints_the_files_and_the_commands_that_use_them(tmp_path: Path) -> None:
    where = tmp_path / "certs"
    code, out, _ = run(["certs", "dev", str(where), "--host", "inventory.internal", "--json"])
    assert code == 0
    document = json.loads(out)
    assert document["files"]["server_cert"] == str(where / "server.pem")
    assert document["server_names"] == ["localhost", "127.0.0.1", "::1", "inventory.internal"]
    assert all(Path(path).exists() for path in document["files"].values())
    serve = document["commands"]["serve"]
    assert f"--tls-cert {where / 'server.pem'}" in serve and f"--client-ca {where / 'ca.pem'}" in serve
    assert "--host 0.0.0.0" in serve  # a --host name means reached from elsewhere
    assert f"--tls-ca {where / 'ca.pem'}" in document["commands"]["client"]
    assert "--target inventory.internal:50051" in document["commands"]["client"]

    code, out, err = run(["certs", "dev", str(where)])
    assert code == 2 and out == ""
    assert "already exist" in err and "--force" in err


def test_the_text_says_what_each_file_is_for(tmp_path: Path) -> None:
    code, out, _ = run(["certs", "dev", str(tmp_path)])
    assert code == 0
    assert "not for production" in out
    for name in ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"):
        assert str(tmp_path / name) in out
    assert f"omnistock serve --tls-cert {tmp_path / 'server.pem'}" in out
    assert "--host 0.0.0.0" not in out  # loopback only: nothing more to ask for


@pytest.mark.parametrize("name", ["", "two words", "store_app", "-edge", "a" * 64])
def test_a_client_name_that_cannot_be_a_certificate_name_is_refused_before_anything_is_written(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(ValueError, match="DNS-style name"):
        make_dev_certificates(tmp_path / "certs", client_name=name)
    assert not (tmp_path / "certs").exists()


@pytest.mark.parametrize("host", ["", "two words", "shop.example/path", "[::1"])
def test_a_host_that_is_neither_a_name_nor_an_address_is_refused(tmp_path: Path, host: str) -> None:
    code, out, err = run(["certs", "dev", str(tmp_path / "certs"), "--host", host])
    assert code == 2 and out == ""
    assert "neither an IP address nor a DNS name" in err
    assert not (tmp_path / "certs").exists()
