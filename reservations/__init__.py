"""Reservations: the pure domain (domain/) and the shard process that owns it (shard/)."""
