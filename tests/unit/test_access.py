"""Keys, scopes and callers (gateway/usecases/access.py) and the guard's token checks."""

from __future__ import annotations

import pytest

from omnistock.gateway.grpc.guard import Authenticator, Unauthenticated, bearer_token
from omnistock.gateway.usecases.access import (
    ALL_SCOPES,
    LOCAL_CALLER,
    ApiKey,
    Caller,
    Scope,
    expand,
    hash_secret,
    name_problem,
    parse_scopes,
    parse_token,
    token_of,
)


def key(secret: str = "s3cret", **fields: object) -> ApiKey:
    values: dict[str, object] = {
        "key_id": "0123456789ab",
        "name": "web-storefront",
        "scopes": ("availability:read",),
        "secret_hash": hash_secret(secret),
    }
    values.update(fields)
    return ApiKey(**values)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_write_implies_read_and_nothing_else() -> None:
    assert expand([Scope.RESERVATIONS_WRITE]) == {Scope.RESERVATIONS_WRITE, Scope.RESERVATIONS_READ}
    assert expand([Scope.NETWORK_ADMIN]) == {Scope.NETWORK_ADMIN, Scope.NETWORK_READ}
    assert expand([Scope.AVAILABILITY_READ]) == {Scope.AVAILABILITY_READ, Scope.NETWORK_READ}
    assert expand([Scope.RESERVATIONS_READ]) == {Scope.RESERVATIONS_READ}
    assert expand([Scope.INVENTORY_WRITE]) == {Scope.INVENTORY_WRITE}
    assert Scope.RESERVATIONS_WRITE not in expand(ALL_SCOPES - {Scope.RESERVATIONS_WRITE})


def test_unknown_scopes_are_named_with_the_known_ones() -> None:
    assert parse_scopes(["availability:read", " ops:read "]) == {Scope.AVAILABILITY_READ, Scope.OPS_READ}
    with pytest.raises(ValueError, match=r"read_inventory.*known: availability:read"):
        parse_scopes(["read_inventory", "availability:read"])


def test_tokens_parse_back_and_garbage_does_not() -> None:
    assert parse_token(token_of("0123456789ab", "abc_def")) == ("0123456789ab", "abc_def")
    for garbage in ["", "osk_", "osk_short_x", "Bearer osk_0123456789ab_x", "osk_0123456789ab_", "x" * 300]:
        assert parse_token(garbage) is None
    assert parse_token("osk_0123456789ab_" + "x" * 300) is None  # bounded before anything else


def test_key_names_are_plain() -> None:
    assert name_problem("web-storefront") is None
    assert name_problem("marketplace.feed_2") is None
    for bad in ["", "Web", "-x", "a b", "a\x1bb", "x" * 64, "storé"]:
        assert name_problem(bad) is not None


def test_a_rotated_key_takes_both_secrets_until_the_grace_ends() -> None:
    old = key("old")
    rotated = old.rotated(hash_secret("new"), now=100.0, grace_seconds=60)
    assert rotated.valid_until("new", 100.0) == float("inf")
    assert rotated.valid_until("old", 159.0) == 160.0
    assert rotated.valid_until("old", 160.0) is None
    assert old.rotated(hash_secret("new"), now=100.0, grace_seconds=0).valid_until("old", 100.0) is None
    revoked = ApiKey.from_json(rotated.to_json().replace('"revoked_at": null', '"revoked_at": 120.0'))
    assert revoked.valid_until("new", 121.0) is None
    assert revoked.valid_until("old", 121.0) is None


def test_a_key_record_never_holds_its_secret() -> None:
    record = key("the-secret").to_json()
    assert "the-secret" not in record
    assert ApiKey.from_json(record) == key("the-secret")


def test_callers_channels_and_customers() -> None:
    bound = key(channels=("web",)).caller()
    assert bound.label == "key:web-storefront"
    assert bound.allows(Scope.NETWORK_READ) and not bound.allows(Scope.RESERVATIONS_WRITE)
    assert bound.allows_channel("web") and not bound.allows_channel("app")
    assert bound.customer_problem("") is None
    assert "not trusted" in (bound.customer_problem("c-1") or "")
    assert key(asserts_customers=True).caller().customer_problem("anyone") is None
    shopper = Caller(label="jwt:c-1", scopes=frozenset(), customer_id="c-1")
    assert shopper.customer_problem("c-1") is None
    assert shopper.customer_problem("c-2") is not None
    assert LOCAL_CALLER.allows_channel("anything") and LOCAL_CALLER.scopes == ALL_SCOPES


def test_the_authenticator_knows_keys_until_they_change() -> None:
    clock = Clock()
    authenticator = Authenticator({"0123456789ab": key("s")}, clock=clock)
    token = token_of("0123456789ab", "s")
    assert authenticator.caller(token).label == "key:web-storefront"
    for bad in ["", token_of("0123456789ab", "wrong"), token_of("ba9876543210", "s"), "eyJhbGciOi.x.y"]:
        with pytest.raises(Unauthenticated):
            authenticator.caller(bad)
    authenticator.replace_keys({"0123456789ab": key("s", revoked_at=clock.now)})
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticator.caller(token)


def test_a_remembered_old_secret_ends_with_its_grace() -> None:
    clock = Clock()
    rotated = key("old").rotated(hash_secret("new"), now=clock.now, grace_seconds=10)
    authenticator = Authenticator({"0123456789ab": rotated}, clock=clock)
    old = token_of("0123456789ab", "old")
    assert authenticator.caller(old).label == "key:web-storefront"
    clock.now += 11
    with pytest.raises(Unauthenticated):
        authenticator.caller(old)
    assert authenticator.caller(token_of("0123456789ab", "new")).label == "key:web-storefront"


def test_bearer_tokens_come_from_the_authorization_metadata() -> None:
    assert bearer_token((("x-other", "1"), ("authorization", "Bearer abc"))) == "abc"
    assert bearer_token((("authorization", b"bearer  abc "),)) == "abc"
    assert bearer_token((("authorization", "Basic abc"),)) == ""
    assert bearer_token(None) == ""
