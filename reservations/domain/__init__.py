"""Reservations as a retailer means them (pure: no Ray, gRPC, Redis or protobuf): partitions
of stock positions, holds and their parts, claims and decisions, commands, sourcing."""
