"""`omnistock certs dev DIR`: a local CA and certificates for trying TLS and mutual TLS.

Development only: the CA's key lies next to the certificates it signed, and the leaves live
for a month. Production certificates come from the operator's own CA or PKI.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from omnistock.cli.common import EXIT_OK, EXIT_USAGE

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""Names every dev server certificate holds: a client on the same machine reaches it by any."""
CA_DAYS = 365
LEAF_DAYS = 30
CLOCK_SKEW = datetime.timedelta(minutes=5)
"""Certificates start this long before now, so a peer whose clock runs behind accepts them."""
DEFAULT_CLIENT_NAME = "omnistock-cli"
DNS_NAME = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
"""A server's name, and a client's (also its certificate's DNS name: verifiers want one)."""
KEY_MODE = 0o600
CERT_MODE = 0o644


@dataclass(frozen=True)
class DevCertificates:
    """Where `make_dev_certificates` wrote each file."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    """The server's certificate followed by the CA's (a full chain)."""
    server_key: Path
    client_cert: Path
    client_key: Path
    hosts: tuple[str, ...]
    """Names and addresses the server certificate holds."""
    client_name: str
    expires: datetime.datetime
    """When the server and client certificates expire (UTC)."""

    def files(self) -> dict[str, Path]:
        return {
            "ca_cert": self.ca_cert,
            "ca_key": self.ca_key,
            "server_cert": self.server_cert,
            "server_key": self.server_key,
            "client_cert": self.client_cert,
            "client_key": self.client_key,
        }


FILE_NAMES = {
    "ca_cert": "ca.pem",
    "ca_key": "ca.key",
    "server_cert": "server.pem",
    "server_key": "server.key",
    "client_cert": "client.pem",
    "client_key": "client.key",
}


class CertificatesExist(FileExistsError):
    """Some of the files are there already; nothing was written."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = ", ".join(str(path) for path in paths)
        super().__init__(f"{names} already exist{'s' if len(paths) == 1 else ''}; nothing was written")


def server_names(hosts: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The loopback names and `hosts`, each once, in order (brackets of an IPv6 address dropped)."""
    names: list[str] = []
    for host in (*LOOPBACK_NAMES, *hosts):
        name = host.strip()
        if name.startswith("[") and name.endswith("]"):  # an IPv6 address as in a URL
            name = name[1:-1]
        if not is_address(name) and not (DNS_NAME.match(name) and len(name) <= 253):
            raise ValueError(f"{host!r} is neither an IP address nor a DNS name")
        if name not in names:
            names.append(name)
    return tuple(names)


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def subject_alternative_names(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "omnistock development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _leaf(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usages: list[x509.ObjectIdentifier],
    now: datetime.datetime,
    names: tuple[str, ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(subject_alternative_names(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _ca(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = _name("omnistock development CA")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        # Signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _pem(certificates: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start (a key is never readable by others, not even
    for an instant); fails if it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # the umask may have taken bits away from a certificate's mode


def make_dev_certificates(
    directory: Path,
    hosts: tuple[str, ...] | list[str] = (),
    client_name: str = DEFAULT_CLIENT_NAME,
    force: bool = False,
    now: datetime.datetime | None = None,
) -> DevCertificates:
    """A CA, a server certificate for the loopback names and `hosts`, and a client certificate
    named `client_name` for mutual TLS, written into `directory` (made if missing). Keys are
    ECDSA P-256, mode 0600. CertificatesExist, before anything is written, when a file is
    there already, unless `force` (then they are replaced)."""
    names = server_names(hosts)
    if not DNS_NAME.match(client_name) or len(client_name) > 253:
        raise ValueError(
            f"the client name {client_name!r} must be a DNS-style name: letters, digits, dashes and dots"
        )
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / name for kind, name in FILE_NAMES.items()}
    present = [path for path in paths.values() if path.exists() or path.is_symlink()]
    if present and not force:
        raise CertificatesExist(present)
    now = now or datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca(ca_key, now)
    server_key = ec.generate_private_key(ec.SECP256R1())
    extra = names[len(LOOPBACK_NAMES) :]
    server_cert = _leaf(
        extra[0] if extra else "localhost",
        server_key.public_key(),
        ca_cert,
        ca_key,
        # Client auth too: `serve --demo` loads its demo through its own port, showing this one.
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        now,
        names,
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _leaf(
        client_name,
        client_key.public_key(),
        ca_cert,
        ca_key,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        now,
        (client_name,),
    )
    contents = {
        "ca_cert": (_pem([ca_cert]), CERT_MODE),
        "ca_key": (_key_pem(ca_key), KEY_MODE),
        "server_cert": (_pem([server_cert, ca_cert]), CERT_MODE),
        "server_key": (_key_pem(server_key), KEY_MODE),
        "client_cert": (_pem([client_cert]), CERT_MODE),
        "client_key": (_key_pem(client_key), KEY_MODE),
    }
    for path in present:  # only with force
        path.unlink()
    for kind, (data, mode) in contents.items():
        _write_new(paths[kind], data, mode)
    return DevCertificates(
        **paths,
        hosts=names,
        client_name=client_name,
        expires=server_cert.not_valid_after_utc,
    )


def _arg(path: Path) -> str:
    return shlex.quote(str(path))


def commands_for(made: DevCertificates) -> dict[str, str]:
    """The commands that use the certificates: serve with mutual TLS, and a client call."""
    host = next((h for h in made.hosts if h not in LOOPBACK_NAMES), None)
    # Off loopback serve also asks for API keys, and makes an admin key at its first start.
    listen = " --host 0.0.0.0" if host is not None else ""
    serve = (
        f"omnistock serve{listen} --tls-cert {_arg(made.server_cert)} --tls-key {_arg(made.server_key)}"
        f" --client-ca {_arg(made.ca_cert)}"
    )
    client_flags = (
        f"--tls-ca {_arg(made.ca_cert)} --tls-cert {_arg(made.client_cert)} --tls-key {_arg(made.client_key)}"
    )
    target = ""
    if host is not None:
        address = f"[{host}]" if ":" in host else host
        target = f" --target {address}:50051 --api-key-file KEY_FILE"
    return {
        "serve": serve,
        "client": f"omnistock nodes list {client_flags}{target}",
        "env": (
            f"export OMNISTOCK_TLS_CA={_arg(made.ca_cert)} OMNISTOCK_TLS_CERT={_arg(made.client_cert)}"
            f" OMNISTOCK_TLS_KEY={_arg(made.client_key)}"
        ),
    }


def describe(made: DevCertificates) -> str:
    until = made.expires.strftime("%Y-%m-%d")
    rows = [
        (
            made.ca_cert,
            "the CA: clients trust it (--tls-ca), serve checks client certificates with it (--client-ca)",
        ),
        (
            made.ca_key,
            "the CA's private key (mode 0600): it can sign anything these trust; delete it when done",
        ),
        (made.server_cert, f"server certificate for {', '.join(made.hosts)}, then the CA's; until {until}"),
        (made.server_key, "the server's private key (mode 0600)"),
        (made.client_cert, f'client certificate "{made.client_name}" for mutual TLS; until {until}'),
        (made.client_key, "the client's private key (mode 0600)"),
    ]
    width = max(len(str(path)) for path, _ in rows)
    commands = commands_for(made)
    lines = [
        "made a development CA and certificates (for trying TLS; not for production):",
        *(f"  {str(path).ljust(width)}  {what}" for path, what in rows),
        "serve with mutual TLS:",
        f"  {commands['serve']}",
        "call it:",
        f"  {commands['client']}",
        "or set them once for every command:",
        f"  {commands['env']}",
    ]
    return "\n".join(lines)


def run_certs_dev(args: argparse.Namespace) -> int:
    try:
        made = make_dev_certificates(
            Path(args.dir), args.host, client_name=args.client_name, force=args.force
        )
    except CertificatesExist as error:
        print(f"error: {error} (--force replaces them)", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        document = {
            "files": {kind: str(path) for kind, path in made.files().items()},
            "server_names": list(made.hosts),
            "client_name": made.client_name,
            "expires": made.expires.isoformat(),
            "commands": commands_for(made),
        }
        print(json.dumps(document, indent=2))
    else:
        print(describe(made))
    return EXIT_OK


def add_certs_commands(commands: Any) -> None:
    """`certs dev` on argparse's subcommands of the `omnistock` parser."""
    certs = commands.add_parser("certs", help="certificates for TLS: dev")
    actions = certs.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    dev = actions.add_parser(
        "dev",
        help="make a local CA, a server and a client certificate for trying TLS and mutual TLS",
        description="Writes into DIR a CA (ca.pem, ca.key), a server certificate for localhost,"
        " 127.0.0.1, ::1 and every --host (server.pem, the CA's certificate after the server's;"
        " server.key) and a client certificate for mutual TLS (client.pem, client.key): ECDSA P-256,"
        f" the CA valid {CA_DAYS} days, the others {LEAF_DAYS}; keys mode 0600. Refuses to replace"
        " files that exist unless --force. Prints the serve and client commands that use them."
        " For development only: production certificates come from your own CA.",
    )
    dev.add_argument("dir", metavar="DIR", help="where to write them (made if missing)")
    dev.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="one more DNS name or IP address of the server (repeatable)",
    )
    dev.add_argument(
        "--client-name",
        default=DEFAULT_CLIENT_NAME,
        help="common name of the client certificate (default %(default)s)",
    )
    dev.add_argument("--force", action="store_true", help="replace files that exist")
    dev.add_argument("--json", action="store_true", help="print what was written as JSON on stdout")
    dev.set_defaults(handler=run_certs_dev)
