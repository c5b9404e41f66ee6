"""Tests for helpers.device."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from helpers import device as device_mod
from helpers.device import available_devices, describe_device, get_device, seed_everything


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_DEVICE", raising=False)


def fake_hardware(monkeypatch: pytest.MonkeyPatch, cuda: int = 0, mps: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(device_mod, "_mps_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(1, True, "cuda"), (0, True, "mps"), (0, False, "cpu")]
)
def test_automatic_order(monkeypatch, cuda: int, mps: bool, expected: str) -> None:
    fake_hardware(monkeypatch, cuda=cuda, mps=mps)
    assert get_device().type == expected


def test_env_override(monkeypatch) -> None:
    fake_hardware(monkeypatch, cuda=2)
    monkeypatch.setenv("COURSE_DEVICE", "cuda:1")
    assert get_device() == torch.device("cuda:1")
    monkeypatch.setenv("COURSE_DEVICE", " CPU ")
    assert get_device() == torch.device("cpu")
    assert get_device("cuda:0") == torch.device("cuda:0")  # an explicit argument wins


@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps", "tpu"])
def test_unavailable_override_says_what_to_do(monkeypatch, name: str) -> None:
    fake_hardware(monkeypatch, cuda=1 if name == "cuda:1" else 0)
    monkeypatch.setenv("COURSE_DEVICE", name)
    with pytest.raises(ValueError) as info:
        get_device()
    message = str(info.value)
    assert "Available devices:" in message and "cpu" in message
    assert "unset COURSE_DEVICE" in message
    if name == "cuda:1":
        assert "cuda:0" in message


def test_empty_env_is_ignored(monkeypatch) -> None:
    fake_hardware(monkeypatch)
    monkeypatch.setenv("COURSE_DEVICE", "")
    assert get_device() == torch.device("cpu")


def test_available_devices(monkeypatch) -> None:
    fake_hardware(monkeypatch, cuda=2, mps=False)
    assert available_devices() == ["cuda:0", "cuda:1", "cpu"]


def test_seed_everything_seeds_all_generators() -> None:
    seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(2))
    seed_everything(7)
    second = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])
    seed_everything(8)
    assert random.random() != first[0] and not torch.equal(torch.rand(2), first[2])


def test_seed_everything_seeds_cuda(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seen.append)
    seed_everything(3)
    assert seen == [3]


def test_describe_device() -> None:
    text = describe_device(torch.device("cpu"))
    assert text.startswith("cpu") and "threads" in text and "\n" not in text
    assert describe_device("mps").startswith("mps")
