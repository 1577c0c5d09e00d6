"""``python -m benchmark``: the same command line as ``llama-benchmark``."""

from benchmark.cli import main

raise SystemExit(main())
