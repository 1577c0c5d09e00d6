"""The record the staging job writes beside a model's weights, and what a deployment expects to find in it.

The job stages one Hub commit and writes ``<weights_prefix without its slash>.staging.json`` next to (not
inside) the prefix, so SageMaker never copies it to ``/opt/ml/model``. SageMaker itself cannot compare it with
anything: the preflight reads it and refuses a deployment whose ``hf_model_id`` or ``hf_revision`` differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

RECORD_SUFFIX = ".staging.json"


def record_key(weights_prefix: str) -> str:
    """``models/llama-2-7b-fp16/`` -> ``models/llama-2-7b-fp16.staging.json``."""
    return weights_prefix.rstrip("/") + RECORD_SUFFIX


@dataclass(frozen=True)
class StagingRecord:
    hf_model_id: str
    revision: str

    @classmethod
    def parse(cls, body: bytes) -> StagingRecord:
        try:
            data: Any = json.loads(body)
            return cls(hf_model_id=str(data["hf_model_id"]), revision=str(data["revision"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"not a staging record (JSON with hf_model_id and revision): {err}") from None

    def mismatches(self, hf_model_id: str, revision: str | None) -> list[str]:
        """What differs from the deployment's configuration; an unpinned revision accepts any commit."""
        found = []
        if self.hf_model_id != hf_model_id:
            found.append(f"staged from {self.hf_model_id}, configured {hf_model_id}")
        if revision is not None and self.revision != revision:
            found.append(f"staged commit {self.revision}, configured hf_revision {revision}")
        return found
