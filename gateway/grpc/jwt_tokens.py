"""JWTs from the retailer's identity provider, accepted besides API keys (optional).

Configured with the provider's issuer, the audience omnistock is known by and a JWKS file
(the provider's public keys, fetched by whoever deploys omnistock: no call to the network
at runtime). A token is accepted when its signature checks with the key its header names
(asymmetric algorithms only), and its issuer, audience, expiry and subject are present and
right. Its scopes come from the `scope` claim (space-separated, as OAuth 2.0 writes them) or
`scp` (a list); unknown scope names are ignored. `omnistock_channels` (a list) binds it to
channels. Its subject is the customer it acts for: a signed customer id.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jwt

from omnistock.gateway.grpc.guard import Unauthenticated
from omnistock.gateway.usecases.access import Caller, Scope, expand

ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
"""Asymmetric only: a shared secret would let whoever verifies also sign."""
LEEWAY_SECONDS = 30
"""Clock skew tolerated on exp and nbf."""
CHANNELS_CLAIM = "omnistock_channels"
MAX_TOKEN_BYTES = 8192


class JwtVerifier:
    def __init__(self, jwks_file: Path, issuer: str, audience: str) -> None:
        self._file = jwks_file
        self._issuer = issuer
        self._audience = audience
        self._loaded_at: float = -1.0
        self._keys: dict[str, jwt.PyJWK] = {}
        self.reload()

    def reload(self) -> None:
        """Read the JWKS file again if it changed (a provider rotating its keys)."""
        changed = os.stat(self._file).st_mtime
        if changed == self._loaded_at:
            return
        document = json.loads(self._file.read_text())
        keys = {}
        for entry in document.get("keys", []):
            if "kid" in entry:
                keys[entry["kid"]] = jwt.PyJWK.from_dict(entry)
        self._keys, self._loaded_at = keys, changed

    def caller(self, token: str, now: float) -> tuple[Caller, float]:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated("token too long")
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(str(header.get("kid", "")))
            if key is None:
                raise Unauthenticated(
                    "unknown credential: neither an API key nor a JWT signed by a known key"
                )
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm for algorithm in ALGORITHMS if algorithm == header.get("alg")],
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"JWT refused: {error}") from None
        granted = claims.get("scope", "")
        names = granted.split() if isinstance(granted, str) else []
        if isinstance(claims.get("scp"), list):
            names += [str(name) for name in claims["scp"]]
        scopes = [Scope(name) for name in names if name in Scope._value2member_map_]
        channels = claims.get(CHANNELS_CLAIM, [])
        subject = str(claims["sub"])
        caller = Caller(
            label=f"jwt:{subject}",
            scopes=expand(scopes),
            channels=frozenset(str(channel) for channel in channels)
            if isinstance(channels, list)
            else frozenset(),
            customer_id=subject,
            rate_key=f"jwt:{claims['iss']}:{subject}",
        )
        return caller, float(claims["exp"])
