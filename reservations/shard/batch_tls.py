"""TLS for the shards' batch port: which certificates, and the contexts both ends make of them.

The port serves TLS, and gateways connect with it, when either is set in the environment of
every process of the cluster (the shards' Ray workers and the gateways alike):

- OMNISTOCK_BATCH_TLS_CERT, OMNISTOCK_BATCH_TLS_KEY and OMNISTOCK_BATCH_TLS_CA: PEM files of
  this node's certificate chain, its key, and the CA that signed every node's certificate;
- else Ray's own TLS, as Ray documents it: RAY_USE_TLS=1 with RAY_TLS_SERVER_CERT,
  RAY_TLS_SERVER_KEY and RAY_TLS_CA_CERT. Where Ray's traffic is encrypted, so are batches.

Both ends show their certificate and check the other's against the CA (mutual TLS, as Ray's
own gRPC does), so a certificate must allow client and server authentication; a gateway also
checks that the shard's certificate names the address it connects to (the Ray node's address,
127.0.0.1 on a local cluster). The port's token then travels inside TLS.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CERT = "OMNISTOCK_BATCH_TLS_CERT"
KEY = "OMNISTOCK_BATCH_TLS_KEY"
CA = "OMNISTOCK_BATCH_TLS_CA"
RAY_USE_TLS = "RAY_USE_TLS"
RAY_CERT = "RAY_TLS_SERVER_CERT"
RAY_KEY = "RAY_TLS_SERVER_KEY"
RAY_CA = "RAY_TLS_CA_CERT"


@dataclass(frozen=True, slots=True)
class BatchTls:
    cert: Path
    key: Path
    ca: Path
    source: str
    """Which settings named them: "omnistock" or "ray"."""


def settings(environ: Mapping[str, str] | None = None) -> BatchTls | None:
    """The certificates the batch port uses, or None for plain TCP. ValueError when the
    settings name some files and not the others: a half-configured cluster must not fall back
    to plain text."""
    env = os.environ if environ is None else environ
    ours = {name: env.get(name, "") for name in (CERT, KEY, CA)}
    if any(ours.values()):
        return _complete(ours, (CERT, KEY, CA), "omnistock")
    if env.get(RAY_USE_TLS, "").strip().lower() in ("1", "true"):
        return _complete(
            {name: env.get(name, "") for name in (RAY_CERT, RAY_KEY, RAY_CA)},
            (RAY_CERT, RAY_KEY, RAY_CA),
            "ray",
        )
    return None


def _complete(values: Mapping[str, str], names: tuple[str, str, str], source: str) -> BatchTls:
    missing = [name for name in names if not values[name]]
    if missing:
        raise ValueError(
            f"TLS of the batch port: {', '.join(missing)} not set (set {', '.join(names)} together)"
        )
    cert, key, ca = (Path(values[name]) for name in names)
    return BatchTls(cert, key, ca, source)


def _context(purpose: int, tls: BatchTls) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    context.load_verify_locations(cafile=tls.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def server_context(tls: BatchTls | None) -> ssl.SSLContext | None:
    """The shard's end: its certificate, and only clients with a certificate of the CA."""
    return None if tls is None else _context(ssl.PROTOCOL_TLS_SERVER, tls)


def client_context(tls: BatchTls | None) -> ssl.SSLContext | None:
    """The gateway's end: its certificate, and only a shard whose certificate the CA signed
    for the address connected to (check_hostname)."""
    return None if tls is None else _context(ssl.PROTOCOL_TLS_CLIENT, tls)
