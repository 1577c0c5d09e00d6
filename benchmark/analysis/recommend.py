"""Pick, per model size, the most cost-effective, the lowest-latency and the highest-throughput deployment.

Each rule says which metric it ranks by, at which concurrency, and which limits a candidate must meet;
:meth:`Rule.describe` writes that into the report so a reader can check the choice. Ties are broken by
the secondary metric, then by the configuration key, so the same results always give the same answer.

Candidates of every serving engine (TGI, vLLM) compete under one rule, so a winner may be either, and its
configuration says which. Where the results hold more than one engine, each rule also names the best of every
other engine for that model (``Recommendation.engine``), so a report shows what choosing the other engine costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from benchmark.analysis.results import LevelResult
from catalog import MODELS
from catalog.engines import ENGINE_NAMES, get_engine


def _usd_per_1m(result: LevelResult) -> float | None:
    return None if result.cost is None else result.cost.usd_per_1m_tokens


def _ms_per_token(result: LevelResult) -> float | None:
    return result.metrics.ms_per_token.median


def _tokens_per_s(result: LevelResult) -> float | None:
    return result.metrics.tokens_per_s


# name -> (label, getter, lower is better)
METRICS: dict[str, tuple[str, Callable[[LevelResult], float | None], bool]] = {
    "usd_per_1m_tokens": ("$ per 1M output tokens", _usd_per_1m, True),
    "ms_per_token_median": ("median ms per output token", _ms_per_token, True),
    "tokens_per_s": ("output tokens/s", _tokens_per_s, False),
}


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    metric: str  # key of METRICS
    tie_breaker: str  # key of METRICS
    concurrency: int
    max_ms_per_token: float | None = None
    max_error_rate: float | None = None

    def describe(self) -> str:
        label, _, lower = METRICS[self.metric]
        tie_label, _, tie_lower = METRICS[self.tie_breaker]
        text = f"{'lowest' if lower else 'highest'} {label} at concurrency {self.concurrency}"
        limits = []
        if self.max_ms_per_token is not None:
            limits.append(f"median ms/token <= {self.max_ms_per_token:g}")
        if self.max_error_rate is not None:
            limits.append(f"error rate <= {self.max_error_rate:.2%}")
        if limits:
            text += f", among results with {' and '.join(limits)}"
        return f"{text}; ties go to the {'lowest' if tie_lower else 'highest'} {tie_label}, then the configuration key"


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("cost", "Most cost-effective", "usd_per_1m_tokens", "ms_per_token_median", concurrency=5),
    Rule("latency", "Lowest latency", "ms_per_token_median", "usd_per_1m_tokens", concurrency=1),
    Rule("throughput", "Highest throughput", "tokens_per_s", "usd_per_1m_tokens", concurrency=20),
)


def rules_with(
    *,
    concurrency: dict[str, int] | None = None,
    max_ms_per_token: float | None = None,
    max_error_rate: float | None = None,
    base: Sequence[Rule] = DEFAULT_RULES,
) -> tuple[Rule, ...]:
    """The default rules with per-rule concurrency and shared limits changed."""
    by_name = concurrency or {}
    return tuple(
        replace(
            rule,
            concurrency=by_name.get(rule.name, rule.concurrency),
            max_ms_per_token=max_ms_per_token if max_ms_per_token is not None else rule.max_ms_per_token,
            max_error_rate=max_error_rate if max_error_rate is not None else rule.max_error_rate,
        )
        for rule in base
    )


@dataclass(frozen=True)
class Recommendation:
    rule: Rule
    model: str  # catalog size, e.g. "7b"
    winner: LevelResult | None
    considered: int  # results of this model at the rule's concurrency
    qualified: int  # of those, how many met every limit and had the metric
    explanation: str
    engine: str | None = None  # None: every engine competed; else the best of this engine only (catalog name)

    @property
    def caveat(self) -> str:
        """``""``, or what a recommendation says when its winner's level was client-bound (not excluded: said)."""
        if self.winner is None or not self.winner.metrics.client_bound:
            return ""
        reasons = "; ".join(self.winner.metrics.client_bound_reasons)
        return f"client-bound level: the load generator, not the endpoint, may have bounded it ({reasons})"


def _rejection(rule: Rule, result: LevelResult) -> str | None:
    if not (result.metrics.tokens_per_s or 0.0) > 0:
        return "no output tokens measured"
    if METRICS[rule.metric][1](result) is None:
        return f"no {METRICS[rule.metric][0]}"
    ms = result.metrics.ms_per_token.median
    if rule.max_ms_per_token is not None and (ms is None or ms > rule.max_ms_per_token):
        return f"median ms/token {ms if ms is None else round(ms, 2)} > {rule.max_ms_per_token:g}"
    rate = result.metrics.error_rate
    if rule.max_error_rate is not None and rate is not None and rate > rule.max_error_rate:
        return f"error rate {rate:.2%} > {rule.max_error_rate:.2%}"
    return None


def _sort_key(rule: Rule) -> Callable[[LevelResult], tuple[float, float, str, str]]:
    def signed(name: str, result: LevelResult) -> float:
        _, getter, lower = METRICS[name]
        value = getter(result)
        if value is None:
            return float("inf")
        return value if lower else -value

    return lambda r: (signed(rule.metric, r), signed(rule.tie_breaker, r), r.configuration.key, r.source)


def recommend_one(
    rule: Rule, model: str, results: Iterable[LevelResult], *, engine: str | None = None
) -> Recommendation:
    """The best result of ``model`` under ``rule``; of one ``engine`` only where it is given."""
    pool = [
        r
        for r in results
        if r.configuration.model == model
        and r.concurrency == rule.concurrency
        and (engine is None or r.configuration.engine == engine)
    ]
    rejected = {id(r): _rejection(rule, r) for r in pool}
    qualified = [r for r in pool if rejected[id(r)] is None]
    if qualified:
        winner = min(qualified, key=_sort_key(rule))
        scope = f" on {get_engine(engine).display_name}" if engine else ""
        found = Recommendation(
            rule, model, winner, len(pool), len(qualified), f"best{scope} of {len(qualified)} qualifying", engine
        )
        return replace(found, explanation=f"{found.explanation}; {found.caveat}") if found.caveat else found
    if not pool:
        why = f"no results for this model at concurrency {rule.concurrency}"
    else:
        reasons = sorted({f"{r.configuration.display_name}: {rejected[id(r)]}" for r in pool})
        why = "no candidate qualifies: " + "; ".join(reasons)
    return Recommendation(rule, model, None, len(pool), 0, why, engine)


def _with_other_engines(rule: Rule, model: str, results: Sequence[LevelResult]) -> list[Recommendation]:
    """The rule's winner among every engine, then the best of each other engine that has a qualifying result."""
    best = recommend_one(rule, model, results)
    if best.winner is None:
        return [best]
    engines = {r.configuration.engine for r in results if r.configuration.model == model}
    others = [name for name in ENGINE_NAMES if name in engines and name != best.winner.configuration.engine]
    runners_up = [recommend_one(rule, model, results, engine=name) for name in others]
    return [best, *(rec for rec in runners_up if rec.winner is not None)]


def recommend(results: Sequence[LevelResult], rules: Sequence[Rule] = DEFAULT_RULES) -> list[Recommendation]:
    """Per rule and per model size present in the results (catalog order): the winner among every engine, then,
    where the results hold more than one engine, the best of each other engine (``Recommendation.engine``)."""
    present = {r.configuration.model for r in results}
    models = [size for size in MODELS if size in present]
    if len({r.configuration.engine for r in results}) < 2:
        return [recommend_one(rule, model, results) for rule in rules for model in models]
    return [rec for rule in rules for model in models for rec in _with_other_engines(rule, model, results)]
