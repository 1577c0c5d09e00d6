"""CDK stacks: each composes constructs from ``llama_constructs`` and wires grants; no resource logic here.

Importing this package puts this checkout's ``constructs/`` folder (the src folder of ``llama_constructs``) on
``sys.path``. See constructs/README.md.
"""

import sys
from pathlib import Path


def _use_this_checkouts_constructs() -> None:
    """Make ``import llama_constructs`` load the package beside this file, whatever else is on ``sys.path``.

    The package is deliberately not installed into the venv: an install maps the name to one folder for every
    checkout sharing that venv, so a second checkout would build its stacks from the first one's constructs.
    Inserted first, so a folder of another checkout that is already on ``sys.path`` (PYTHONPATH) does not win.
    """
    folder = str(Path(__file__).resolve().parents[1] / "constructs")
    if folder not in sys.path:
        sys.path.insert(0, folder)


_use_this_checkouts_constructs()
