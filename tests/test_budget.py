"""Tests for helpers.budget."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers.budget import PROFILES, Budget, describe_budget, get_budget


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NBGRADER_EXECUTION", "COURSE_BUDGET"):
        monkeypatch.delenv(name, raising=False)


def test_profiles_are_ordered_by_size() -> None:
    tiny, cpu, gpu = PROFILES["tiny"], PROFILES["cpu"], PROFILES["gpu"]
    assert tiny.train_size < 1000 and tiny.epochs <= 2
    assert 5000 <= cpu.train_size <= 10000
    assert gpu.train_size == 50000 and gpu.epochs >= 10
    assert tiny.train_size < cpu.train_size < gpu.train_size


def test_budget_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_budget("cpu").epochs = 100  # type: ignore[misc]


def test_explicit_name_wins_over_env(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_BUDGET", "gpu")
    assert get_budget("tiny").name == "tiny"
    assert get_budget().name == "gpu"
    assert "COURSE_BUDGET=gpu" in str(get_budget())


def test_nbgrader_always_means_tiny(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_BUDGET", "gpu")
    monkeypatch.setenv("NBGRADER_EXECUTION", "")  # set, even if empty
    for name in (None, "gpu", "cpu"):
        budget = get_budget(name)
        assert budget == PROFILES["tiny"]
    assert "NBGRADER_EXECUTION is set" in str(get_budget("gpu"))


@pytest.mark.parametrize(("cuda", "expected"), [(True, "gpu"), (False, "cpu")])
def test_automatic_choice(monkeypatch, cuda: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    budget = get_budget()
    assert budget.name == expected
    assert "CUDA" in budget.reason


def test_unknown_name_lists_valid_ones(monkeypatch) -> None:
    with pytest.raises(ValueError, match="tiny, cpu, gpu"):
        get_budget("huge")
    monkeypatch.setenv("COURSE_BUDGET", "laptop")
    with pytest.raises(ValueError, match="COURSE_BUDGET"):
        get_budget()


def test_describe_mentions_name_sizes_and_reason() -> None:
    text = describe_budget(get_budget("cpu"))
    assert text.startswith("Budget 'cpu' (chosen because it was requested explicitly)")
    assert str(PROFILES["cpu"].train_size) in text and "\n" not in text
    assert str(get_budget("cpu")) == text
    assert isinstance(get_budget("CPU"), Budget)  # names are case-insensitive
