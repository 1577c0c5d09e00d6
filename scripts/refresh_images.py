"""Regenerate the vendored image tables (``catalog/data/<engine>_images.json``) from the SageMaker SDK's own.

The SDK (sagemaker-core) ships ``image_uri_config/huggingface-llm.json`` (TGI) and
``image_uri_config/huggingface-vllm.json`` (the Hugging Face vLLM image); we vendor the part we need so that
synth never imports the SDK (v3 pulls over 1 GB) and never touches the network. Every family in
``catalog.images.IMAGE_FAMILIES`` is refreshed unless ``--engine`` names some.

Usage::

    pip download --no-deps sagemaker-core==2.27.0 -d /tmp/smcore     # or: pip install --no-deps
    python scripts/refresh_images.py --from-wheel /tmp/smcore/sagemaker_core-2.27.0-*.whl
    python scripts/refresh_images.py            # reads the installed sagemaker-core distribution
    python scripts/refresh_images.py --check    # exit 1 if a vendored table is stale
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

from catalog.images import IMAGE_FAMILIES, ImageFamily, render_table, vendor_table  # noqa: E402


def _read_installed(family: ImageFamily) -> tuple[dict[str, Any], str]:
    dist = distribution("sagemaker-core")
    path = Path(str(dist.locate_file(family.sdk_json_member)))
    return json.loads(path.read_text()), f"sagemaker-core {dist.version} {family.sdk_json_member}"


def _read_wheel(pattern: str, family: ImageFamily) -> tuple[dict[str, Any], str]:
    matches = sorted(glob.glob(pattern))
    if not matches:
        raise SystemExit(f"no wheel matches {pattern!r}")
    wheel = matches[-1]
    version = Path(wheel).name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read(family.sdk_json_member)), f"sagemaker-core {version} {family.sdk_json_member}"


def refresh(family: ImageFamily, sdk: dict[str, Any], source: str, *, check: bool) -> bool:
    """Write (or with ``check`` compare) one family's table; True when it is (or now is) up to date."""
    table = vendor_table(sdk, source=source)
    rendered = render_table(table)
    path = family.vendored_path
    if check:
        current = path.read_text() if path.exists() else ""
        if current != rendered:
            print(f"{path} differs from {source}; rerun without --check", file=sys.stderr)
            return False
        print(f"{path} agrees with {source}")
        return True
    path.write_text(rendered)
    name = family.display_name
    print(f"wrote {path.relative_to(ROOT)} from {source}: {len(table['versions'])} {name} versions")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-wheel", help="path or glob of a sagemaker_core wheel")
    parser.add_argument("--check", action="store_true", help="exit 1 if a vendored table is stale")
    parser.add_argument(
        "--engine", action="append", choices=sorted(IMAGE_FAMILIES), help="only this family (repeatable)"
    )
    args = parser.parse_args()
    ok = True
    for engine in args.engine or sorted(IMAGE_FAMILIES):
        family = IMAGE_FAMILIES[engine]
        sdk, source = _read_wheel(args.from_wheel, family) if args.from_wheel else _read_installed(family)
        ok = refresh(family, sdk, source, check=args.check) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
