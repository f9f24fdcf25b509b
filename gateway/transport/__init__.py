"""From a gateway to the shards: micro-batches, one link per shard, replies and view sync."""
