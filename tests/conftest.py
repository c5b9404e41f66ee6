"""Shared fixtures."""
import pytest


@pytest.fixture
def grading_mode(monkeypatch):
    """Run as nbgrader does: an untouched stub's check raises instead of printing."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
