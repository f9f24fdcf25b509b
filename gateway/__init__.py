"""The gateway process: the gRPC edge (grpc/), the use cases (usecases/), the transport to the
shards (transport/) and the start-up of the whole service (runtime/)."""
