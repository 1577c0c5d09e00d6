"""What is sent: prompts (from a JSONL dataset or a built-in deterministic set) and generation parameters.

The 2023 benchmark sent ShareGPT prompts with ``max_new_tokens`` 50 and greedy decoding; those are the
defaults here so that results stay comparable.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.measure.load import BUILTIN_DATASET
from catalog.errors import ConfigError, Issue

CHARS_PER_TOKEN = 4.0  # the usual English estimate; the emulator uses the same one

# Common English words: short, and each a single token in Llama's vocabulary, so the built-in prompts'
# token count is predictable without shipping a tokenizer.
_WORDS = (  # noqa: SIM905 - reads as prose, kept as one string
    "the of and to in is that it for was on are as with his they at be this from have or by one had not "
    "but what all were when we there can an your which their said if do will each about how up out them "
    "then she many some so these would other into has more her two like him see time could no make than "
    "first been its who now people my made over did down only way find use may water long little very "
    "after words called just where most know get through back much go good new write our me man too any "
    "day same right look think also around another came come work three word must because does part even "
    "place well such here take why things help put years different away again off went old number great"
).split()


@dataclass(frozen=True)
class Prompt:
    """One prompt; ``expected_input_tokens`` is an estimate when known (the server's count wins)."""

    text: str
    id: str = ""
    expected_input_tokens: int | None = None


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters sent with every request. Greedy unless ``do_sample`` is set."""

    max_new_tokens: int = 50
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        issues: list[Issue] = []
        if self.max_new_tokens < 1:
            issues.append(Issue("max_new_tokens", self.max_new_tokens, "must be >= 1"))
        if self.temperature is not None and self.temperature <= 0:
            issues.append(Issue("temperature", self.temperature, "must be > 0 (leave unset for greedy)"))
        if self.top_p is not None and not 0 < self.top_p < 1:
            issues.append(Issue("top_p", self.top_p, "must be in the open interval (0, 1)"))
        if self.top_k is not None and self.top_k < 1:
            issues.append(Issue("top_k", self.top_k, "must be >= 1"))
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            issues.append(Issue("repetition_penalty", self.repetition_penalty, "must be > 0"))
        if issues:
            raise ConfigError(issues, context="generation parameters")

    def tgi_parameters(self) -> dict[str, Any]:
        """The ``parameters`` object of a TGI ``/generate`` request (``details`` on: the server counts tokens)."""
        out: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "details": True, "do_sample": self.do_sample}
        optional = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        if self.stop:
            out["stop"] = list(self.stop)
        return out

    def openai_parameters(self) -> dict[str, Any]:
        """Sampling fields of an OpenAI chat request; greedy is ``temperature: 0``."""
        out: dict[str, Any] = {"max_tokens": self.max_new_tokens}
        out["temperature"] = (self.temperature if self.temperature is not None else 1.0) if self.do_sample else 0.0
        if self.top_p is not None:
            out["top_p"] = self.top_p
        if self.seed is not None:
            out["seed"] = self.seed
        if self.stop:
            out["stop"] = list(self.stop)
        return out


def _dataset_error(path: Path, line: int, value: object, allowed: str) -> ConfigError:
    return ConfigError([Issue(f"{path}:{line}", value, allowed)], context="prompt dataset")


def _text_of(value: object) -> str | None:
    """A prompt field's text: a string, or the first human turn of a ShareGPT ``conversations`` list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for turn in value:
            if isinstance(turn, dict) and turn.get("from") in ("human", "user") and isinstance(turn.get("value"), str):
                return str(turn["value"])
    return None


def load_jsonl(
    path: str | Path, *, field: str = "prompt", id_field: str = "id", limit: int | None = None
) -> list[Prompt]:
    """Prompts from a JSON-lines file: one object per line, the text under ``field``. Blank lines are skipped.

    ``field`` may also name a ShareGPT ``conversations`` list (its first human turn is used). Errors name the
    file and line, because datasets are large and a bare ``KeyError`` would not say where to look.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError([Issue("dataset", str(path), "file does not exist")], context="prompt dataset") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue("dataset", str(path), f"must be a readable UTF-8 file ({exc})")]) from None
    prompts: list[Prompt] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _dataset_error(path, number, line[:60], f"must be one JSON object per line ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise _dataset_error(path, number, line[:60], "must be a JSON object")
        text = _text_of(obj.get(field))
        if not text:
            raise _dataset_error(path, number, obj.get(field), f"field {field!r} must be a non-empty string")
        expected = obj.get("input_tokens")
        prompts.append(
            Prompt(
                text=text,
                id=str(obj.get(id_field, f"{path.name}:{number}")),
                expected_input_tokens=expected if isinstance(expected, int) else None,
            )
        )
        if limit is not None and len(prompts) >= limit:
            break
    if not prompts:
        raise ConfigError([Issue("dataset", str(path), "must contain at least one prompt")], context="prompt dataset")
    return prompts


def builtin_prompts(input_tokens: Sequence[int] = (128, 256, 512), per_length: int = 8, seed: int = 0) -> list[Prompt]:
    """A deterministic prompt set with controlled input lengths (about ``n`` tokens each).

    Text is common words up to ``n * CHARS_PER_TOKEN`` characters: exactly ``n`` by the emulator's
    estimate, and within about 10-20 % of ``n`` for Llama's tokenizer (the server's count is what is reported).
    """
    if not input_tokens or any(n < 8 for n in input_tokens) or per_length < 1:
        raise ConfigError(
            [Issue("input_tokens", tuple(input_tokens), "must be non-empty, each >= 8, with per_length >= 1")],
            context="built-in prompts",
        )
    rng = random.Random(seed)
    prompts: list[Prompt] = []
    prefix = "Continue this text:"
    for n in input_tokens:
        target_chars = int(n * CHARS_PER_TOKEN)
        for index in range(per_length):
            words = [prefix]
            length = len(prefix)
            while length < target_chars:
                word = rng.choice(_WORDS)
                words.append(word)
                length += len(word) + 1
            prompts.append(Prompt(text=" ".join(words), id=f"builtin-{n}-{index}", expected_input_tokens=n))
    return prompts


def estimate_tokens(text: str) -> int:
    """The emulator's stand-in for a tokenizer (never used for reported token counts)."""
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def prompts_for(dataset: str) -> list[Prompt]:
    """A level's prompts (``LoadSpec.dataset``): the built-in set, or a JSONL file's."""
    return builtin_prompts() if dataset == BUILTIN_DATASET else load_jsonl(dataset)
