"""KeyService: API keys created, listed, rotated and revoked through the API (network:admin)."""

from __future__ import annotations

import grpc

from omnistock.gateway.grpc.convert import Limits, to_timestamp
from omnistock.gateway.grpc.guard import current_caller
from omnistock.gateway.grpc.key_store import KeyStore
from omnistock.gateway.grpc.network_store import NetworkStore
from omnistock.gateway.grpc.servicers import Servicer, rpc
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.usecases.access import ApiKey
from omnistock.protos.gen.omnistock.v1 import keys_pb2, keys_pb2_grpc
from omnistock.reservations.domain.errors import InvalidArgument


def key_to_proto(key: ApiKey) -> keys_pb2.ApiKey:
    message = keys_pb2.ApiKey(
        key_id=key.key_id,
        name=key.name,
        scopes=key.scopes,
        channels=key.channels,
        asserts_customers=key.asserts_customers,
        created_at=to_timestamp(key.created_at),
        created_by=key.created_by,
    )
    if key.revoked_at is not None:
        message.revoked_at.CopyFrom(to_timestamp(key.revoked_at))
    if key.rotated_at is not None:
        message.rotated_at.CopyFrom(to_timestamp(key.rotated_at))
    if key.previous_hash:
        message.previous_valid_until.CopyFrom(to_timestamp(key.previous_until))
    return message


class KeyServicer(Servicer, keys_pb2_grpc.KeyServiceServicer):
    SERVICE = keys_pb2.DESCRIPTOR.services_by_name["KeyService"]

    def __init__(self, network: NetworkStore, limits: Limits, metrics: Metrics, keys: KeyStore) -> None:
        super().__init__(network, limits, metrics)
        self.keys = keys

    @rpc("CreateKey")
    async def CreateKey(
        self, request: keys_pb2.CreateKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.CreateKeyResponse:
        for channel_id in request.channels:
            if channel_id not in self.network.network.channels:
                raise InvalidArgument([("channels", f"unknown channel {channel_id!r}: put it first")])
        key, token = await self.keys.create(
            request.name,
            request.scopes,
            request.channels,
            request.asserts_customers,
            by=current_caller().label,
        )
        return keys_pb2.CreateKeyResponse(key=key_to_proto(key), token=token)

    @rpc("ListKeys")
    async def ListKeys(
        self, request: keys_pb2.ListKeysRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.ListKeysResponse:
        keys = sorted((await self.keys.keys()).values(), key=lambda key: key.name)
        return keys_pb2.ListKeysResponse(keys=[key_to_proto(key) for key in keys])

    @rpc("RotateKey")
    async def RotateKey(
        self, request: keys_pb2.RotateKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.RotateKeyResponse:
        key, token = await self.keys.rotate(request.name, request.grace_seconds, by=current_caller().label)
        return keys_pb2.RotateKeyResponse(key=key_to_proto(key), token=token)

    @rpc("RevokeKey")
    async def RevokeKey(
        self, request: keys_pb2.RevokeKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.RevokeKeyResponse:
        return keys_pb2.RevokeKeyResponse(
            key=key_to_proto(await self.keys.revoke(request.name, by=current_caller().label))
        )
