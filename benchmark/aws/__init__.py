"""The AWS side of the benchmark: what the state machine's Lambdas and the pipeline's smoke step run."""
