"""CDK stacks: each composes constructs from constructs/ and wires grants; no resource logic here.

Importing this package also makes the project's constructs/ folder importable as ``constructs.<module>``
in any import order: the ``constructs`` library merges same-named folders from ``sys.path`` only once,
when it is first imported (``pkgutil.extend_path``), so a library imported before the project root was
on ``sys.path`` would otherwise never see this folder. See constructs/README.md.
"""

from pathlib import Path

import constructs as _library

_PROJECT_CONSTRUCTS = str(Path(__file__).resolve().parents[1] / "constructs")
if _PROJECT_CONSTRUCTS not in _library.__path__:
    _library.__path__.append(_PROJECT_CONSTRUCTS)
