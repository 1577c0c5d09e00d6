"""The staging job's shell, run by bash itself: inputs checked with the settings' rules, the catalog's commit
staged by default, patterns passed as quoted arguments, and a record beside the weights the preflight can read.

``hf`` and ``aws`` are replaced by shell functions that print their arguments, so what bash really passes
(word splitting, globbing, quoting) is what is asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from catalog.models import MODELS
from llama_constructs.foundation.weights_staging import DEFAULT_INCLUDE, STAGING_REQUIREMENTS, buildspec, pinned_commits
from settings import DeploymentConfig
from settings.staging_record import StagingRecord, record_key

SPEC = buildspec(token_secret_name="llama2/hf-token")
STUBS = 'hf() { printf "hf<%s>\\n" "$@"; }; aws() { printf "aws<%s>\\n" "$@"; cat > "$RECORD_OUT"; }\n'
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _run(phases: tuple[str, ...], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The phases' commands in one bash, as CodeBuild runs a 0.2 buildspec (one shell for every command)."""
    commands = [c for phase in phases for c in SPEC["phases"][phase]["commands"]]
    script = "set -e\n" + STUBS + "\n".join(commands)
    defaults = dict(SPEC["env"]["variables"])
    full = {"PATH": "/usr/bin:/bin", "WEIGHTS_BUCKET": "bucket", "CODEBUILD_BUILD_ID": "p:1", **defaults, **env}
    return subprocess.run(["bash", "-c", script], env=full, cwd=cwd, capture_output=True, text=True, check=False)


def _inputs(model_id: str, **extra: str) -> dict[str, str]:
    return {"HF_MODEL_ID": model_id, "WEIGHTS_PREFIX": "models/llama-2-7b-fp16/", **extra}


def test_the_default_revision_is_the_catalogs_commit_for_that_hub_id(tmp_path: Path) -> None:
    cfg = DeploymentConfig(scenario="latency", model="7b")
    result = _run(("pre_build",), _inputs(str(cfg.hf_model_id)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"staging {cfg.hf_model_id}@{cfg.hf_revision} to" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (_inputs("meta-llama/Llama-2-7b-chat-hf; curl evil"), "HF_MODEL_ID must be a Hub repository id"),
        (_inputs("not-a-repo"), "HF_MODEL_ID must be a Hub repository id"),
        (_inputs("someone/unknown-model"), "no commit pinned for someone/unknown-model"),
        (_inputs("meta-llama/Llama-2-7b-chat-hf", HF_REVISION="main"), "HF_REVISION must be a full commit id"),
        (_inputs("meta-llama/Llama-2-7b-chat-hf", HF_INCLUDE="*.json;id"), "HF_INCLUDE must be space-separated"),
        (_inputs("meta-llama/Llama-2-7b-chat-hf", HF_INCLUDE="$(id)"), "HF_INCLUDE must be space-separated"),
    ],
)
def test_bad_inputs_stop_the_build_before_any_download(env: dict[str, str], message: str, tmp_path: Path) -> None:
    result = _run(("pre_build", "build"), env, tmp_path)
    assert result.returncode != 0
    assert message in result.stdout
    assert "hf<" not in result.stdout, "nothing may be downloaded"


def test_patterns_reach_hf_one_quoted_argument_each_and_the_record_names_the_commit(tmp_path: Path) -> None:
    weights = tmp_path / "codebuild" / "output" / "weights"
    (tmp_path / "x.json").write_text("{}")  # a file a glob would expand *.json to, in the working directory
    record_out = tmp_path / "record.json"
    env = _inputs("someone/other-llama", HF_REVISION=COMMIT, RECORD_OUT=str(record_out))
    script_env = {**env, "HF_INCLUDE": DEFAULT_INCLUDE}
    result = _run(("pre_build",), script_env, tmp_path)
    assert result.returncode == 0, result.stdout
    download = SPEC["phases"]["build"]["commands"][0].replace("/codebuild/output/weights", str(weights))
    record = SPEC["phases"]["build"]["commands"][-1]
    script = "set -e\n" + STUBS + download + "\n" + record
    full = {"PATH": "/usr/bin:/bin", "WEIGHTS_BUCKET": "bucket", "CODEBUILD_BUILD_ID": "p:1", **script_env}
    run = subprocess.run(["bash", "-c", script], env=full, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    args = re.findall(r"hf<([^>]*)>", run.stdout)
    assert args[:4] == ["download", "someone/other-llama", "--revision", COMMIT]
    assert args[4:8] == ["--include", "*.safetensors", "*.json", "tokenizer.model"]
    uploaded = re.findall(r"aws<([^>]*)>", run.stdout)
    assert f"s3://bucket/{record_key('models/llama-2-7b-fp16/')}" in uploaded
    assert StagingRecord.parse(record_out.read_bytes()) == StagingRecord("someone/other-llama", COMMIT)


def test_every_catalog_commit_is_a_full_commit_and_the_job_knows_each() -> None:
    commits = pinned_commits()
    for model in MODELS.values():
        for quant, repo in model.hub_ids.items():
            commit = model.hub_revisions[quant]
            if commit is not None:
                assert re.fullmatch(r"[0-9a-f]{40}", commit)
                assert commits[repo] == commit


def test_the_hub_client_is_installed_by_hash_without_the_token() -> None:
    install = SPEC["phases"]["install"]["commands"]
    assert any("--require-hashes" in c and c.startswith("env -u HF_TOKEN pip install") for c in install)
    lines = [x for x in STAGING_REQUIREMENTS.read_text().splitlines() if x and not x.startswith("#")]
    assert any(x.startswith("huggingface-hub==0.36.2 --hash=sha256:") for x in lines)
    assert all(f"'{x}'" in install[0] for x in lines)


def test_a_staging_record_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not a staging record"):
        StagingRecord.parse(b'{"hf_model_id": "a/b"}')
    record = StagingRecord.parse(json.dumps({"hf_model_id": "a/b", "revision": COMMIT}).encode())
    assert record.mismatches("a/b", COMMIT) == []
    assert record.mismatches("a/b", None) == [], "an unpinned deployment accepts any staged commit"
    assert len(record.mismatches("c/d", "f" * 40)) == 2
