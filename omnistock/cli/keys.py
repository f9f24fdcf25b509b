"""`omnistock keys create|list|rotate|revoke`: API keys, through the KeyService (network:admin)."""

from __future__ import annotations

import argparse

from omnistock.cli.common import EXIT_OK
from omnistock.cli.output import Output, local_time, table, to_dict
from omnistock.client import OmnistockClient
from omnistock.protos.gen.omnistock.v1 import keys_pb2

SHOWN_ONCE = "The token is shown this once (only its hash is stored): keep it in your secret store."


def key_state(key: keys_pb2.ApiKey) -> str:
    if key.HasField("revoked_at"):
        return f"revoked {local_time(key.revoked_at)}"
    if key.HasField("previous_valid_until"):
        return f"active; old secret until {local_time(key.previous_valid_until)}"
    return "active"


def key_text(key: keys_pb2.ApiKey) -> str:
    channels = ", ".join(key.channels) or "every channel"
    customers = "may name customers" if key.asserts_customers else "names no customer"
    return (
        f"key {key.name} ({key.key_id}): {', '.join(key.scopes)}; {channels}; {customers}; {key_state(key)}"
    )


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


async def cmd_keys_create(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.create_key(
        args.name, split_list(args.scopes), split_list(args.channels or ""), args.asserts_customers
    )
    out.result(
        {"key": to_dict(response.key), "token": response.token},
        f"{key_text(response.key)}\ntoken: {response.token}\n{SHOWN_ONCE}",
    )
    return EXIT_OK


async def cmd_keys_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    keys = await client.list_keys()
    rows = [
        (
            key.name,
            key.key_id,
            " ".join(key.scopes),
            ",".join(key.channels) or "*",
            "yes" if key.asserts_customers else "no",
            key_state(key),
        )
        for key in keys
    ]
    text = table(["NAME", "ID", "SCOPES", "CHANNELS", "CUSTOMERS", "STATE"], rows) if rows else "no API keys"
    out.result({"keys": [to_dict(key) for key in keys]}, text)
    return EXIT_OK


async def cmd_keys_rotate(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.rotate_key(args.name, args.grace)
    out.result(
        {"key": to_dict(response.key), "token": response.token},
        f"{key_text(response.key)}\ntoken: {response.token}\n{SHOWN_ONCE}",
    )
    return EXIT_OK


async def cmd_keys_revoke(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    key = await client.revoke_key(args.name)
    out.result({"key": to_dict(key)}, f"{key_text(key)}\nEvery gateway refuses it within a second.")
    return EXIT_OK
