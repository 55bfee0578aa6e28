"""Generation: one request shape for the CLI, the metadata code and the HTTP API; a pipeline that loads a model
once and runs many requests."""
