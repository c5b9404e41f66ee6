"""Shared fixtures."""
import pytest

import scaffolding


@pytest.fixture
def grading_mode(monkeypatch):
    """Run as nbgrader does: an untouched stub's check raises instead of printing."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")


@pytest.fixture
def imports():
    """The names a notebook's imports cell gives every answer cell (a fresh copy per test)."""
    return dict(scaffolding.IMPORTS)


@pytest.fixture
def unattempted_class():
    return scaffolding.Unattempted


@pytest.fixture
def unattempted_function():
    return scaffolding.unattempted
