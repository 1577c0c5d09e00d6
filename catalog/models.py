"""Llama 2 model sizes and quantizations: the numbers memory fit and bandwidth bounds are computed from."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from catalog.errors import Issue, unknown

GB = 1e9  # decimal gigabytes: GPU vendors and AWS quote memory and bandwidth this way
# One rule for Hub ids and commits, used by the settings and by the staging job's shell checks (POSIX ERE).
HUB_REPO_ID_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
HUB_COMMIT_PATTERN = r"^[0-9a-f]{40}$"


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one Llama 2 size (from the models' config.json on the Hugging Face Hub)."""

    size: str
    display_name: str
    parameters: float
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    vocab_size: int
    context_length: int
    hub_ids: MappingProxyType[str, str]  # quantization -> Hub repository the weights are staged from
    # quantization -> the Hub commit staged by default and expected beside the weights; None: none pinned yet.
    hub_revisions: MappingProxyType[str, str | None]

    def availability_issue(self, quantization: str, *, given: object, field: str = "quantization") -> Issue | None:
        """A quantization this size has no Hub weights for (e.g. one the catalog lists for another size only)."""
        if quantization in self.hub_ids:
            return None
        return Issue(field, given, f"{self.display_name} is available as {', '.join(self.hub_ids)}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.attention_heads

    @property
    def kv_cache_bytes_per_token(self) -> int:
        """fp16 K and V for every layer: the memory one token of context holds."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


@dataclass(frozen=True)
class Quantization:
    """How many bytes a weight takes once loaded by TGI."""

    name: str
    display_name: str
    bits_per_weight: float  # includes group scales and zeros for GPTQ (4-bit, group size 128)
    tgi_quantize: str | None  # value of HF_MODEL_QUANTIZE, None for unquantized
    min_tgi_version: str

    def weight_bytes(self, model: ModelSpec) -> float:
        return model.parameters * self.bits_per_weight / 8


def _hub(**ids: str) -> MappingProxyType[str, str]:
    return MappingProxyType(dict(ids))


def _commits(**commits: str | None) -> MappingProxyType[str, str | None]:
    return MappingProxyType(dict(commits))


# Hub commits: each was found as the snapshot directory of that repository in several public code repositories
# (a snapshot directory is named after the commit it holds). This machine cannot reach the Hub, so they are not
# re-checked here: a commit that does not exist makes ``hf download --revision`` fail before anything is written.
# No commit of TheBloke/Llama-2-70B-chat-GPTQ could be found offline: pass HF_REVISION when staging it, and set
# hf_revision to the commit the staging job records.


MODELS: MappingProxyType[str, ModelSpec] = MappingProxyType(
    {
        "7b": ModelSpec(
            size="7b",
            display_name="Llama 2 7B",
            parameters=6.74e9,
            layers=32,
            hidden_size=4096,
            attention_heads=32,
            kv_heads=32,
            vocab_size=32000,
            context_length=4096,
            hub_ids=_hub(fp16="meta-llama/Llama-2-7b-chat-hf", gptq="TheBloke/Llama-2-7B-Chat-GPTQ"),
            hub_revisions=_commits(
                fp16="f5db02db724555f92da89c216ac04704f23d4590", gptq="831af5b22d7f2eed9c37ca851675a2887cfeb399"
            ),
        ),
        "13b": ModelSpec(
            size="13b",
            display_name="Llama 2 13B",
            parameters=13.02e9,
            layers=40,
            hidden_size=5120,
            attention_heads=40,
            kv_heads=40,
            vocab_size=32000,
            context_length=4096,
            hub_ids=_hub(fp16="meta-llama/Llama-2-13b-chat-hf", gptq="TheBloke/Llama-2-13B-chat-GPTQ"),
            hub_revisions=_commits(
                fp16="a2cb7a712bb6e5e736ca7f8cd98167f81a0b5bd8", gptq="ea078917a7e91c896787c73dba935f032ae658e9"
            ),
        ),
        "70b": ModelSpec(
            size="70b",
            display_name="Llama 2 70B",
            parameters=68.98e9,
            layers=80,
            hidden_size=8192,
            attention_heads=64,
            kv_heads=8,
            vocab_size=32000,
            context_length=4096,
            hub_ids=_hub(fp16="meta-llama/Llama-2-70b-chat-hf", gptq="TheBloke/Llama-2-70B-chat-GPTQ"),
            hub_revisions=_commits(fp16="e9149a12809580e8602995856f8098ce973d1080", gptq=None),
        ),
    }
)

QUANTIZATIONS: MappingProxyType[str, Quantization] = MappingProxyType(
    {
        "fp16": Quantization("fp16", "fp16", 16.0, None, "0.9.3"),  # the 2023 tables printed "None"
        # 4-bit weights plus an fp16 scale and a 4-bit zero per group of 128: 4 + 20/128 bits.
        "gptq": Quantization("gptq", "GPTQ", 4.0 + 20 / 128, "gptq", "0.9.3"),
    }
)

# Aliases people type for the same thing; resolved before lookup.
_MODEL_ALIASES = {"7": "7b", "13": "13b", "70": "70b", "llama-2-7b": "7b", "llama-2-13b": "13b", "llama-2-70b": "70b"}
_QUANT_ALIASES = {"none": "fp16", "float16": "fp16", "gptq-4bit": "gptq", "4bit": "gptq"}


def get_model(size: str, *, field: str = "model") -> ModelSpec:
    key = _MODEL_ALIASES.get(str(size).lower(), str(size).lower())
    if key not in MODELS:
        raise unknown(field, size, MODELS)
    return MODELS[key]


def get_quantization(name: str, *, field: str = "quantization") -> Quantization:
    key = _QUANT_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in QUANTIZATIONS:
        raise unknown(field, name, QUANTIZATIONS)
    return QUANTIZATIONS[key]
