"""The account, read once per session from the shared synthesized app (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import AppAssembly
from tests.iam.account import Account


@pytest.fixture(scope="session")
def account(app_assembly: AppAssembly) -> Account:
    return Account({name: app_assembly.template_json(name) for name in app_assembly.stacks})
