"""CDK entry point: read the context once, validate every deployment, then build the stacks.

``cdk synth -c model=13b -c latency.instance_type=ml.p4d.24xlarge`` and friends; see config.example.yaml for
every setting. A bad setting stops synth with the field, the value and what is allowed, and no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from catalog.errors import ConfigError
from settings import load_settings
from stacks.compliance import apply_compliance
from stacks.composition import add_llama_stacks
from stacks.pipeline_stack import PIPELINE_STACK_NAME, LlamaPipelineStack

ROOT = Path(__file__).resolve().parent


def project_context() -> dict[str, Any]:
    """cdk.json's context (feature flags, defaults), so an app built in-process matches ``cdk synth``."""
    data: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())
    return dict(data.get("context", {}))


def build_app(context: dict[str, Any] | None = None, *, outdir: str | None = None) -> cdk.App:
    # Context given here is the default; the CLI's (-c and cdk.json, via the environment) takes precedence.
    app = cdk.App(context={**project_context(), **(context or {})}, outdir=outdir)
    settings = load_settings(app.node.get_all_context(), base_dir=ROOT)
    add_llama_stacks(app, settings)
    # -c stages=<file>: also the promotion pipeline (docs/promotion.md); without it, nothing needs an account.
    if settings.options.stages is not None:
        LlamaPipelineStack(app, PIPELINE_STACK_NAME, config=settings.options.stages)
    apply_compliance(app)
    return app


def main() -> int:
    try:
        build_app().synth()
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
