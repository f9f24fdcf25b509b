"""The gRPC gateway: servicers, conversion, routing, batching, metrics, CLI and client."""
