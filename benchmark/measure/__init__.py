"""The measurement core: what is sent, the load generator, request records and the metrics computed from them."""
