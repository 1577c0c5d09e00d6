"""The benchmark model role pulls exactly the images of the matrices it runs, vLLM's included (issue 18).

The app is synthesized with benchmark/matrices/engines.yaml (TGI and vLLM entries); every hosting call of every
configuration the state machine carries (its image as the definition names it) must be allowed, every grant of the
model role must be needed by one, and near misses of the vLLM pull (another account, another region, AWS's own vLLM
repository) must be denied, as must a vLLM pull by the default app's model role, whose matrices are TGI only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.iam.account import Account
from tests.iam.calls import Call
from tests.iam.components import Benchmark, benchmark_configurations, benchmark_model_calls, image_of
from tests.iam.intrinsics import REGION
from tests.iam.usage import unused_grants
from tests.test_compliance import _violations

if TYPE_CHECKING:
    from tests.conftest import AppAssembly

VLLM_TABLE = json.loads((Path(__file__).resolve().parents[2] / "catalog" / "data" / "vllm_images.json").read_text())
VLLM = VLLM_TABLE["versions"]["0.29.0"]
VLLM_ACCOUNT = VLLM["registries"][REGION]
# An account that serves the same vLLM image in another region, so a near miss by account alone.
OTHER_ACCOUNT = next(a for r, a in sorted(VLLM["registries"].items()) if a != VLLM_ACCOUNT)
OTHER_REGION = next(r for r, a in sorted(VLLM["registries"].items()) if a == VLLM_ACCOUNT and r != REGION)


@pytest.fixture(scope="module")
def engines_account(engines_assembly: AppAssembly) -> Account:
    return Account({name: engines_assembly.template_json(name) for name in engines_assembly.stacks})


def _pull(account: Account, role_stack: str, repository: str, registry: str, region: str = REGION) -> Call:
    role = account.role(role_stack, "ModelRole")
    names = {"RepositoryName": repository, "Account": registry, "Region": region}
    return Call("image pull", role, "ecr:BatchGetImage", {"repository": names})


def test_the_state_machine_carries_both_engines_images(engines_account: Account) -> None:
    images = {image_of(config) for _, config in benchmark_configurations(Benchmark.read(engines_account))}
    assert (VLLM_ACCOUNT, "huggingface-vllm") in images
    assert {repository for _, repository in images} == {"huggingface-pytorch-tgi-inference", "huggingface-vllm"}


def test_the_model_role_allows_every_hosting_call_of_both_engines_and_nothing_more(engines_account: Account) -> None:
    benchmark = Benchmark.read(engines_account)
    calls = list(benchmark_model_calls(benchmark))
    denied = [f"{c.component}: {c.action}: {d.reason}" for c in calls if not (d := c.evaluate(engines_account)).allowed]
    assert not denied, "\n".join(denied)
    role = benchmark.role("ModelRole")
    unused = [str(f) for f in unused_grants(engines_account, [role], calls) if f.owner == role.logical_id]
    assert not unused, "\n".join(unused)


NEAR_MISSES = {
    "the vLLM repository in another region's account": ("huggingface-vllm", OTHER_ACCOUNT, REGION),
    "the vLLM repository in another region": ("huggingface-vllm", VLLM_ACCOUNT, OTHER_REGION),
    "AWS's own vLLM DLC repository": ("vllm", VLLM_ACCOUNT, REGION),
    "a repository named after vLLM's": ("huggingface-vllm-inference", VLLM_ACCOUNT, REGION),
}


@pytest.mark.parametrize("case", sorted(NEAR_MISSES))
def test_near_misses_of_the_vllm_pull_are_denied(engines_account: Account, case: str) -> None:
    repository, registry, region = NEAR_MISSES[case]
    decision = _pull(engines_account, "LlamaBenchmarkStack", repository, registry, region).evaluate(engines_account)
    assert not decision.allowed, f"{case}: allowed by {[(u[0].source, u[0].index) for u in decision.used]}"


def test_the_vllm_pull_itself_is_allowed(engines_account: Account) -> None:
    """The control of the near misses: the region's own account and repository."""
    decision = _pull(engines_account, "LlamaBenchmarkStack", "huggingface-vllm", VLLM_ACCOUNT).evaluate(engines_account)
    assert decision.allowed, decision.reason


def test_a_tgi_only_benchmark_cannot_pull_the_vllm_image(account: Account) -> None:
    """The default app's matrices (2023, smoke) are TGI only: its model role pulls TGI's repository alone."""
    assert not _pull(account, "LlamaBenchmarkStack", "huggingface-vllm", VLLM_ACCOUNT).evaluate(account).allowed
    tgi = {image_of(config) for _, config in benchmark_configurations(Benchmark.read(account))}
    assert {repository for _, repository in tgi} == {"huggingface-pytorch-tgi-inference"}


def test_the_mixed_benchmark_app_is_nag_clean(engines_assembly: AppAssembly) -> None:
    findings = list(_violations(engines_assembly.validation_report()))
    assert engines_assembly.validation_error is None and not findings, "\n".join(findings)
