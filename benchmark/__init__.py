"""Benchmark engine: measure Llama 2 endpoints truthfully, price them and recommend one. No CDK import."""
