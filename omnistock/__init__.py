"""omnistock: real-time inventory availability and reservations for omnichannel retail.

The one import name of the project. What lives where (imports only flow downwards):

    omnistock.cli, omnistock.client     the `omnistock` command and the Python client
    omnistock.loadtest                  bench, peak-day load test, sizing
    omnistock.gateway.runtime           start-up: Redis, Ray shards, gateway processes
    omnistock.gateway.grpc              the gRPC edge: validate, convert, call a use case
    omnistock.gateway.usecases          reserve, confirm, source, reassign, ... across shards
    omnistock.gateway.transport         batches from a gateway to the shards
    omnistock.reservations.shard        the shard process: its partitions and their journal
    omnistock.reservations.domain       reservations, pure: partitions, holds, sourcing
    omnistock.availability              availability, pure: the network, channels, ATP, pickup
    omnistock.protos                    the wire contract (generated code in protos/gen)
"""

__version__ = "0.1.0"
