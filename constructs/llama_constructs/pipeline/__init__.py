"""The promotion pipeline: its source, artifact bucket, the cross-account smoke test and the generated findings."""
