"""``python -m benchmark.emulator --port 8080 [--config '{"latency": {"tpot_base_ms": 30}}']``"""

from __future__ import annotations

import argparse
import json
import sys

from benchmark.emulator.config import EmulatorConfig
from benchmark.emulator.server import serve
from benchmark.serialize import from_data
from catalog.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed at start)")
    parser.add_argument("--config", default="{}", help="EmulatorConfig as JSON (latency, faults, stall_s, ...)")
    args = parser.parse_args(argv)
    try:
        config = from_data(EmulatorConfig, json.loads(args.config))
    except (ConfigError, json.JSONDecodeError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(args.host, args.port, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
