"""The shard process: a Ray actor owning some partitions, applying batches to them and
journaling every change in Redis before it answers."""
