"""Generated protobuf and gRPC code of the embedserve.v1 API."""
