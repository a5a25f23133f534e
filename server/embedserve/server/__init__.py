"""The embedserve server: model runner, batcher, gRPC servicers, CLI."""
