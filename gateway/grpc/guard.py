"""The guard in front of every RPC: who is calling (an API key or a JWT), may it call this
method (the scope the method needs), and may it come in now (admission limits,
gateway/grpc/admission.py, counted by the caller's rate key).

A grpc.aio server interceptor, as gRPC's auth example does it: the bearer token comes as
call metadata, `authorization: Bearer <token>`. A refusal is answered here, before the
request is read: UNAUTHENTICATED for a missing, unknown, revoked or expired credential,
PERMISSION_DENIED naming the scope a key lacks. The caller it admits is set for the call
(`current_caller`), for the servicers' channel and customer checks and the audit trail.

Every method of omnistock's services needs a scope (`METHOD_SCOPES`); one that is missing
from the table is refused to everyone (a new RPC is closed until someone decides who may
call it). Health and reflection are open: a load balancer's probes carry no key, and
reflection shows only the API's schema, which is public.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import grpc

from omnistock.gateway.grpc.admission import EXEMPT_PREFIXES, Admission, admit_call, behaviour_field
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.usecases.access import (
    LOCAL_CALLER,
    ApiKey,
    Caller,
    Scope,
    parse_token,
)

log = logging.getLogger(__name__)

CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("omnistock_caller", default=LOCAL_CALLER)


def current_caller() -> Caller:
    """The caller of the RPC being served (LOCAL_CALLER when auth is off or outside a call)."""
    return CALLER.get()


_V1 = "/omnistock.v1."
METHOD_SCOPES: Mapping[str, Scope] = {
    _V1 + "AvailabilityService/GetAvailability": Scope.AVAILABILITY_READ,
    _V1 + "AvailabilityService/FindPickupStores": Scope.AVAILABILITY_READ,
    _V1 + "AvailabilityService/WatchAvailability": Scope.AVAILABILITY_READ,
    _V1 + "InventoryService/PutNodes": Scope.NETWORK_ADMIN,
    _V1 + "InventoryService/ListNodes": Scope.NETWORK_READ,
    _V1 + "InventoryService/SetStock": Scope.INVENTORY_WRITE,
    _V1 + "InventoryService/AdjustStock": Scope.INVENTORY_WRITE,
    _V1 + "InventoryService/LoadStock": Scope.INVENTORY_WRITE,
    _V1 + "InventoryService/ExpectSupply": Scope.INVENTORY_WRITE,
    _V1 + "InventoryService/CheckConservation": Scope.OPS_READ,
    _V1 + "ShardService/GetShards": Scope.OPS_READ,
    _V1 + "ShardService/ScaleShards": Scope.OPS_ADMIN,
    _V1 + "NetworkService/GetNetwork": Scope.NETWORK_READ,
    _V1 + "NetworkService/PutGroups": Scope.NETWORK_ADMIN,
    _V1 + "NetworkService/DeleteGroups": Scope.NETWORK_ADMIN,
    _V1 + "NetworkService/PutChannels": Scope.NETWORK_ADMIN,
    _V1 + "NetworkService/DeleteChannels": Scope.NETWORK_ADMIN,
    _V1 + "NetworkService/PutPurchaseLimits": Scope.NETWORK_ADMIN,
    _V1 + "ReservationService/Reserve": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/Confirm": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/Release": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/Extend": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/Fulfil": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/CancelLines": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/Return": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/Reassign": Scope.RESERVATIONS_WRITE,
    _V1 + "ReservationService/GetReservation": Scope.RESERVATIONS_READ,
    _V1 + "KeyService/CreateKey": Scope.NETWORK_ADMIN,
    _V1 + "KeyService/ListKeys": Scope.NETWORK_ADMIN,
    _V1 + "KeyService/RotateKey": Scope.NETWORK_ADMIN,
    _V1 + "KeyService/RevokeKey": Scope.NETWORK_ADMIN,
    _V1 + "EventService/ReadReservationEvents": Scope.EVENTS_READ,
    _V1 + "EventService/ReadAuditEvents": Scope.EVENTS_READ,
}
"""The scope each method needs. `IMPLIED` in access.py says which scopes a scope brings."""

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/")
"""Methods anyone may call: probes and the API's schema."""

MAX_CACHED_CALLERS = 10_000
"""Tokens remembered once checked; the cache is emptied when full and on every key change."""


class Unauthenticated(Exception):
    """No credential, or one that is unknown, revoked or expired: the message says which."""


class TokenVerifier(Protocol):
    """Checks a token that is not an API key (a JWT): its caller, or Unauthenticated."""

    def caller(self, token: str, now: float) -> tuple[Caller, float]:
        """The caller and until when (epoch seconds) the answer holds."""
        ...


class Authenticator:
    """Bearer token -> Caller, from the keys in hand (replaced whole when the store changes)
    and, for other tokens, an optional verifier of JWTs."""

    def __init__(
        self,
        keys: Mapping[str, ApiKey] | None = None,
        tokens: TokenVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys: Mapping[str, ApiKey] = dict(keys or {})
        self._tokens = tokens
        self._clock = clock
        self._known: dict[str, tuple[Caller, float]] = {}

    def replace_keys(self, keys: Mapping[str, ApiKey]) -> None:
        self._keys = dict(keys)
        self._known = {}

    def caller(self, token: str) -> Caller:
        now = self._clock()
        known = self._known.get(token)
        if known is not None and now < known[1]:
            return known[0]
        if not token:
            raise Unauthenticated(
                "no credential: send the metadata `authorization: Bearer <API key>`"
                " (the CLI's --api-key or OMNISTOCK_API_KEY)"
            )
        parsed = parse_token(token)
        if parsed is not None:
            key = self._keys.get(parsed[0])
            until = key.valid_until(parsed[1], now) if key is not None else None
            if key is None or until is None:
                raise Unauthenticated("unknown or revoked API key")
            answer = (key.caller(), until)
        elif self._tokens is not None:
            answer = self._tokens.caller(token, now)
        else:
            raise Unauthenticated("unknown credential: not an omnistock API key (osk_...)")
        if len(self._known) >= MAX_CACHED_CALLERS:
            self._known = {}
        self._known[token] = answer
        return answer[0]


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The token of the call's `authorization: Bearer <token>` metadata, or ""."""
    for name, value in metadata or ():
        if name == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


Refusal = tuple[grpc.StatusCode, str]


class Guard(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes every call (`authenticator` None: auth off, every call
    is LOCAL_CALLER), then asks `admit` whether it may come in now."""

    def __init__(
        self, authenticator: Authenticator | None, metrics: Metrics, admission: Admission | None = None
    ) -> None:
        self._authenticator = authenticator
        self._metrics = metrics
        self._admission = admission

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        scope = METHOD_SCOPES.get(method)
        if scope is None:
            if method.startswith(OPEN_PREFIXES):
                return self._admitted(handler, method, LOCAL_CALLER.rate_key)
            log.error("refused %s: the method has no scope in METHOD_SCOPES", method)
            return _refusing(
                handler, (grpc.StatusCode.PERMISSION_DENIED, f"{method} is not open to any caller")
            )
        caller = LOCAL_CALLER
        if self._authenticator is not None:
            try:
                caller = self._authenticator.caller(bearer_token(details.invocation_metadata))
            except Unauthenticated as error:
                self._metrics.observe_auth_refusal("unauthenticated")
                return _refusing(handler, (grpc.StatusCode.UNAUTHENTICATED, str(error)))
            if not caller.allows(scope):
                self._metrics.observe_auth_refusal("permission_denied")
                return _refusing(
                    handler,
                    (
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"{caller.label} lacks the scope {scope.value} that {method.rsplit('/', 1)[1]} needs",
                    ),
                )
        # The call is served in this task: the caller holds for it and nothing else.
        CALLER.set(caller)
        return self._admitted(handler, method, caller.rate_key)

    def _admitted(self, handler: grpc.RpcMethodHandler, method: str, rate_key: str) -> grpc.RpcMethodHandler:
        """`handler` as admission lets it in (holding a slot), or refusing at once."""
        if self._admission is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        return admit_call(handler, self._admission, method, rate_key)


def _refusing(handler: grpc.RpcMethodHandler, refusal: Refusal) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that answers `refusal` without reading the
    request (gRPC hands it over as bytes, unparsed)."""
    code, message = refusal

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    return handler._replace(**{behaviour_field(handler): refuse, "request_deserializer": None})
