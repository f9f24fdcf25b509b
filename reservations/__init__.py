"""Reservations: partition state (pure), shard actors, journal and recovery."""
