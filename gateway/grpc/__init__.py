"""The gRPC edge: servicers validate and convert, then call a use case or the shards."""
