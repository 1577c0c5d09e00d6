"""Constructs more than one component builds: the KMS key, data and access-log buckets, the Python function."""
