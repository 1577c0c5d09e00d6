"""Reading the YAML or JSON files settings come from (config file, stage file), with errors that name the option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from catalog.errors import ConfigError, Issue


def read_data_file(path: str | Path, *, field: str, kind: str, base_dir: Path | None = None) -> Any:
    """The parsed content of ``path`` (JSON for ``.json``, else YAML); relative paths are taken from ``base_dir``.

    ``field`` is the option that named the file (``config``, ``stages``), ``kind`` what the file is.
    """
    file = Path(path)
    if base_dir is not None and not file.is_absolute():
        file = base_dir / file
    if not file.is_file():
        raise ConfigError([Issue(field, str(path), f"must name an existing YAML or JSON {kind}")])
    text = file.read_text()
    try:
        return json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(
            [Issue(field, str(path), f"is not valid {file.suffix.lstrip('.') or 'YAML'}: {err}")]
        ) from None
