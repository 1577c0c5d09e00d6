"""Regenerate ``catalog/data/tgi_images.json`` from the SageMaker SDK's bundled image table.

The SDK (sagemaker-core) ships ``image_uri_config/huggingface-llm.json``; we vendor the part we
need so that synth never imports the SDK (v3 pulls over 1 GB) and never touches the network.

Usage::

    pip download --no-deps sagemaker-core==2.27.0 -d /tmp/smcore     # or: pip install --no-deps
    python scripts/refresh_tgi_images.py --from-wheel /tmp/smcore/sagemaker_core-2.27.0-*.whl
    python scripts/refresh_tgi_images.py            # reads the installed sagemaker-core distribution
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog.tgi_images import SDK_JSON_MEMBER, VENDORED_PATH, vendor_table  # noqa: E402


def _read_installed() -> tuple[dict[str, Any], str]:
    dist = distribution("sagemaker-core")
    path = Path(str(dist.locate_file(SDK_JSON_MEMBER)))
    return json.loads(path.read_text()), f"sagemaker-core {dist.version} {SDK_JSON_MEMBER}"


def _read_wheel(pattern: str) -> tuple[dict[str, Any], str]:
    matches = sorted(glob.glob(pattern))
    if not matches:
        raise SystemExit(f"no wheel matches {pattern!r}")
    wheel = matches[-1]
    version = Path(wheel).name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read(SDK_JSON_MEMBER)), f"sagemaker-core {version} {SDK_JSON_MEMBER}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-wheel", help="path or glob of a sagemaker_core wheel")
    parser.add_argument("--check", action="store_true", help="exit 1 if the vendored table is stale")
    args = parser.parse_args()
    sdk, source = _read_wheel(args.from_wheel) if args.from_wheel else _read_installed()
    table = vendor_table(sdk, source=source)
    rendered = json.dumps(table, indent=1, sort_keys=True) + "\n"
    if args.check:
        current = VENDORED_PATH.read_text() if VENDORED_PATH.exists() else ""
        if current != rendered:
            print(f"{VENDORED_PATH} differs from {source}; rerun without --check", file=sys.stderr)
            return 1
        print(f"{VENDORED_PATH} agrees with {source}")
        return 0
    VENDORED_PATH.write_text(rendered)
    print(f"wrote {VENDORED_PATH.relative_to(ROOT)} from {source}: {len(table['versions'])} TGI versions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
