"""The sizing config writer's check (benchmark side, no settings import) refuses what the app's loader refuses.

``benchmark.sizing.config_writer.check_deployable`` validates the written section through the catalog's coercion
and ``DeploymentConfig``; ``settings.load_settings`` (what ``cdk synth -c config=FILE`` runs) must agree on
every file the writer could produce, accepted or refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark.sizing.config_writer import check_deployable
from catalog.errors import ConfigError
from settings import load_settings

# (section, refused): 13B fp16 does not fit one A10G; max below min; an instance that does not exist; not a number.
SECTIONS = [
    ({"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge", "max_instances": 3}, False),
    ({"model": "13b", "quantization": "fp16", "instance_type": "ml.g5.12xlarge", "autoscaling_target": 7.5}, False),
    ({"model": "70b", "quantization": "gptq", "instance_type": "ml.g5.12xlarge", "tgi_version": "2.0.2"}, False),
    ({"model": "13b", "quantization": "fp16", "instance_type": "ml.g5.2xlarge"}, True),
    ({"model": "7b", "instance_type": "ml.g5.2xlarge", "min_instances": 3, "max_instances": 2}, True),
    ({"model": "13b", "quantization": "fp16", "instance_type": "ml.p4d.12xlarge"}, True),
    ({"model": "7b", "autoscaling_target": "many"}, True),
]


def _synth_refuses(text: str, scenario: str, directory: Path) -> bool:
    path = directory / "sized.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_settings({"config": str(path), "scenarios": scenario})
    except ConfigError:
        return True
    return False


def _writer_refuses(text: str, scenario: str) -> bool:
    try:
        check_deployable(text, scenario)
    except ConfigError as err:
        assert "synth would refuse it" in str(err)
        assert all(i.field.startswith(f"config.{scenario}.") for i in err.issues)
        return True
    return False


def _id(value: object) -> str:
    return ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else f"refused={value}"


@pytest.mark.parametrize(("section", "refused"), SECTIONS, ids=_id)
@pytest.mark.parametrize("scenario", ["cost", "latency"])
def test_the_writer_and_the_loader_agree(
    section: dict[str, object], refused: bool, scenario: str, tmp_path: Path
) -> None:
    text = yaml.safe_dump({scenario: section}, sort_keys=False)
    assert _writer_refuses(text, scenario) == refused
    assert _synth_refuses(text, scenario, tmp_path) == refused


def test_a_refused_section_names_the_field() -> None:
    text = yaml.safe_dump({"cost": {"model": "13b", "quantization": "fp16", "instance_type": "ml.g5.2xlarge"}})
    with pytest.raises(ConfigError, match=r"config\.cost\."):
        check_deployable(text, "cost")
