"""The endpoint construct's former module: it serves both engines now, as ``inference_endpoint``."""

from llama_constructs.endpoint.inference_endpoint import (
    EXECUTION_MARGIN_S,
    TERMINATION_WAIT_S,
    InferenceEndpoint,
    InferenceEndpointProps,
    TgiEndpoint,
    TgiEndpointProps,
    execution_timeout_s,
)

__all__ = [
    "EXECUTION_MARGIN_S",
    "TERMINATION_WAIT_S",
    "InferenceEndpoint",
    "InferenceEndpointProps",
    "TgiEndpoint",
    "TgiEndpointProps",
    "execution_timeout_s",
]
