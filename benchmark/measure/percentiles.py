"""Summary statistics with one exact, documented percentile definition and an honest sample-size flag.

Definition: linear interpolation between closest ranks (Hyndman & Fan type 7, numpy's default).
For sorted samples x[0..n-1] and q in [0, 1], h = (n - 1) * q and
``P(q) = x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.

Support rule: a percentile q is *supported* only when at least one sample lies beyond it on average,
i.e. ``n * (1 - q) >= 1``, i.e. ``n >= 1 / (1 - q)``: the median needs 2 samples, p90 needs 10, p95 needs 20
and p99 needs 100. Unsupported percentiles are still computed (they are the best estimate we have) but
are listed in :attr:`Distribution.unsupported` so reports can mark them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from benchmark.serialize import JsonShape

PERCENTILES: dict[str, float] = {"median": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Type-7 percentile of already sorted values; raises on empty input or q outside [0, 1]."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q}")
    h = (len(sorted_values) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (h - low) * (sorted_values[high] - sorted_values[low])


def min_samples(q: float) -> int:
    """Samples needed before percentile q is supported (see the module docstring)."""
    if not 0.0 <= q < 1.0:
        raise ValueError(f"q must be within [0, 1), got {q}")
    # round() absorbs float noise: 1 / (1 - 0.99) is 100.00000000000009, and p99 needs 100, not 101.
    return max(1, math.ceil(round(1.0 / (1.0 - q), 9)))


@dataclass(frozen=True)
class Distribution:
    """count, mean, min, max and the percentiles in :data:`PERCENTILES` of one quantity (all None if empty)."""

    count: int = 0
    mean: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    median: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    unsupported: tuple[str, ...] = field(default=())
    # JSON: min/max under their short names; a null distribution (or none) reads as one of no samples.
    JSON_SHAPE: ClassVar[JsonShape] = JsonShape(
        keys={"minimum": "min", "maximum": "max"},
        empty=lambda: Distribution.empty(),  # noqa: PLW0108 - the class does not exist yet when its body runs
    )

    @classmethod
    def empty(cls) -> Distribution:
        """No samples: every percentile unsupported."""
        return cls(unsupported=tuple(PERCENTILES))

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        data = sorted(values)
        if not data:
            return cls.empty()
        points = {name: percentile(data, q) for name, q in PERCENTILES.items()}
        return cls(
            count=len(data),
            mean=math.fsum(data) / len(data),
            minimum=data[0],
            maximum=data[-1],
            unsupported=tuple(name for name, q in PERCENTILES.items() if len(data) < min_samples(q)),
            **points,
        )

    def get(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value

    def is_supported(self, name: str) -> bool:
        return name not in self.unsupported
