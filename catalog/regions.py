"""What an AWS region name looks like: one rule for deployments, stage files and benchmark records."""

from __future__ import annotations

import re

from catalog.errors import Issue

REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


def region_issue(value: object, *, field: str = "region") -> Issue | None:
    """The problem with ``value`` as a region name, or None when it is well formed."""
    if isinstance(value, str) and REGION.match(value):
        return None
    return Issue(field, value, "must be an AWS region name such as us-east-1")
