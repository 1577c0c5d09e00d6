"""Compare the CloudFormation templates of two cloud assemblies, asset hashes masked.

    python scripts/compare_templates.py BEFORE_DIR AFTER_DIR

Both are ``cdk synth -o`` folders (nested stage assemblies included). Every template is loaded as JSON, and
every asset hash (64 hex digits, also inside asset keys and names, and the hash of a cdk-assets destination
id) and ``aws:asset:*`` metadata value is masked, so a change of bundled code alone compares equal. Prints
each template that still differs, with the JSON paths of its differences, and exits 1 if any does (or a
template exists on one side only).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HASH = re.compile(r"[0-9a-f]{64}")
# cdk-assets' destination ids, "<asset hash>:<account>-<region>-<8 hex of the asset and destination>".
DESTINATION = re.compile(r"[0-9a-f]{64}:([0-9a-z-]+)-[0-9a-f]{8}\b")
ASSET_METADATA = re.compile(r"^aws:asset:")


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: "<asset>" if ASSET_METADATA.match(key) else normalise(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        return HASH.sub("<asset-hash>", DESTINATION.sub(r"<asset-hash>:\1-<destination-hash>", value))
    return value


def templates(root: Path) -> dict[str, Any]:
    return {
        str(path.relative_to(root)): normalise(json.loads(path.read_text()))
        for path in sorted(root.rglob("*.template.json"))
    }


def differences(before: Any, after: Any, path: str = "$") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(set(before) | set(after)):
            if key not in after:
                found.append(f"{path}.{key}: removed")
            elif key not in before:
                found.append(f"{path}.{key}: added")
            else:
                found += differences(before[key], after[key], f"{path}.{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d for i, (b, a) in enumerate(zip(before, after, strict=True)) for d in differences(b, a, f"{path}[{i}]")
        ]
    if before != after:
        return [f"{path}: {json.dumps(before)[:200]} -> {json.dumps(after)[:200]}"]
    return []


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = (templates(Path(a)) for a in argv)
    status = 0
    for name in sorted(set(before) | set(after)):
        if name not in after or name not in before:
            print(f"{name}: only in {'before' if name in before else 'after'}")
            status = 1
            continue
        found = differences(before[name], after[name])
        if found:
            status = 1
            print(f"{name}: {len(found)} difference(s)")
            for line in found[:50]:
                print(f"  {line}")
    print(f"{len(before)} template(s) before, {len(after)} after: {'identical' if status == 0 else 'DIFFERENT'}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
