"""Start-up and shutdown: the embedded Redis, Ray and its shards, gateway processes."""
