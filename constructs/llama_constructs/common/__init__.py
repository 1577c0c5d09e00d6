"""Constructs several components build: KMS key, data and access-log buckets, notification topic, Python function."""
