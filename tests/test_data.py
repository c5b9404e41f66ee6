"""Tests for helpers.data: the synthetic set, the CIFAR-10 path (offline, faked) and loaders."""

from __future__ import annotations

import hashlib
import socket
import time
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import data
from helpers.budget import get_budget
from helpers.data import (
    SYNTHETIC_CLASSES,
    DataBundle,
    get_datasets,
    load_cifar10,
    make_loaders,
    make_synthetic_dataset,
)
from helpers.device import seed_everything
from helpers.inspection import count_parameters
from helpers.training import train

ENV_VARS = ("NBGRADER_EXECUTION", "COURSE_DATA", "COURSE_BUDGET", "COURSE_DATA_DIR", "COURSE_DEVICE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def small_cpu_budget(**changes):
    return replace(get_budget("cpu"), train_size=60, test_size=30, **changes)


# --------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------


def test_synthetic_shapes_dtypes_range_and_balance() -> None:
    images, labels = make_synthetic_dataset(200, image_size=24, seed=3)
    assert images.shape == (200, 3, 24, 24) and images.dtype == torch.float32
    assert labels.shape == (200,) and labels.dtype == torch.int64
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert torch.bincount(labels, minlength=10).tolist() == [20] * 10
    assert len(SYNTHETIC_CLASSES) == 10
    # Pixels are on 8-bit levels (this is what makes the bytes machine-independent).
    assert torch.equal(torch.round(images * 255) / 255, images)


def test_synthetic_is_deterministic_and_seed_dependent() -> None:
    a_img, a_lab = make_synthetic_dataset(64, seed=5)
    b_img, b_lab = make_synthetic_dataset(64, seed=5)
    c_img, _ = make_synthetic_dataset(64, seed=6)
    assert a_img.numpy().tobytes() == b_img.numpy().tobytes()
    assert torch.equal(a_lab, b_lab)
    assert not torch.equal(a_img, c_img)


def test_synthetic_bytes_are_pinned() -> None:
    # Guards "the same bytes on any machine". If you change the generator on purpose,
    # update this hash (and say so in the changelog: students' results will change).
    images, labels = make_synthetic_dataset(50, seed=0)
    digest = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
    assert digest == "514d8dc238748f4cebbe500641309c9b4d6967bc34f8fd0d74945184968b1e76"


def test_synthetic_does_not_touch_torch_or_numpy_global_rng() -> None:
    seed_everything(123)
    expected_torch, expected_np = torch.rand(3), np.random.rand(3)
    seed_everything(123)
    make_synthetic_dataset(20)
    assert torch.equal(torch.rand(3), expected_torch)
    assert np.array_equal(np.random.rand(3), expected_np)


def test_synthetic_generation_is_fast() -> None:
    start = time.perf_counter()
    make_synthetic_dataset(10_000)
    assert time.perf_counter() - start < 8.0  # about 1.5 s on 2 laptop cores


def test_synthetic_classes_differ_in_shape_not_just_colour() -> None:
    # Mean images per class are nearly featureless (random position and colour), so a
    # nearest-class-mean classifier on raw pixels should be close to chance.
    images, labels = make_synthetic_dataset(2000, seed=1)
    flat = images.flatten(1)
    means = torch.stack([flat[labels == k].mean(0) for k in range(10)])
    test_images, test_labels = make_synthetic_dataset(500, seed=2)
    pred = torch.cdist(test_images.flatten(1), means).argmin(1)
    assert (pred == test_labels).float().mean() < 0.3


def _small_cnn() -> nn.Module:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(3, 16), nn.MaxPool2d(2),  # (B, 16, 16, 16)
        *block(16, 32), nn.MaxPool2d(2),  # (B, 32, 8, 8)
        *block(32, 64), nn.MaxPool2d(2),  # (B, 64, 4, 4)
        *block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip


def _mlp(hidden: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 32 * 32, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 10)
    )


def test_synthetic_is_hard_enough_that_a_cnn_beats_an_mlp(capsys: pytest.CaptureFixture[str]) -> None:
    """Architecture must matter: a small CNN clearly beats an MLP of the same size."""
    train_set = TensorDataset(*make_synthetic_dataset(3000, seed=0))
    test_set = TensorDataset(*make_synthetic_dataset(1000, seed=1_000))
    results = {}
    for name, build in (("cnn", _small_cnn), ("mlp", _mlp)):
        seed_everything(0)
        model = build()
        loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
        history = train(
            model, loader, DataLoader(test_set, batch_size=500), epochs=3, device="cpu", progress=False
        )
        results[name] = (count_parameters(model), history.test_acc[-1])
    with capsys.disabled():
        print(f"\n[CNN vs MLP on synthetic shapes] {results}")
    (cnn_params, cnn_acc), (mlp_params, mlp_acc) = results["cnn"], results["mlp"]
    assert abs(cnn_params - mlp_params) / cnn_params < 0.3  # similar size
    assert cnn_acc - mlp_acc >= 0.10, results
    assert cnn_acc < 0.95, results  # not solved after a short run


# --------------------------------------------------------------------------------------
# Choosing the data (CIFAR-10 is always faked: tests never use the network)
# --------------------------------------------------------------------------------------


class FailingCIFAR10:
    """Stands in for torchvision's CIFAR10 when the network is down."""

    calls: list[dict] = []
    timeout_seen: float | None = None

    def __init__(self, root: str, train: bool, download: bool) -> None:
        FailingCIFAR10.calls.append({"root": root, "train": train, "download": download})
        FailingCIFAR10.timeout_seen = socket.getdefaulttimeout()
        raise urllib.error.URLError("no route to host")


class PresentCIFAR10:
    """Stands in for torchvision's CIFAR10 with the data already on disk."""

    roots: list[str] = []

    def __init__(self, root: str, train: bool, download: bool) -> None:
        PresentCIFAR10.roots.append(root)
        n = 100 if train else 40
        rng = np.random.default_rng(0 if train else 1)
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = [i % 10 for i in range(n)]

    def __len__(self) -> int:
        return len(self.data)


@pytest.fixture
def failing_cifar(monkeypatch: pytest.MonkeyPatch) -> type[FailingCIFAR10]:
    FailingCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FailingCIFAR10)
    return FailingCIFAR10


@pytest.fixture
def present_cifar(monkeypatch: pytest.MonkeyPatch) -> type[PresentCIFAR10]:
    PresentCIFAR10.roots = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", PresentCIFAR10)
    return PresentCIFAR10


def test_explicit_synthetic_prints_one_line_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = get_datasets("synthetic", budget=small_cpu_budget())
    out, err = capsys.readouterr()
    assert isinstance(bundle, DataBundle) and bundle.name == "synthetic"
    assert (len(bundle.train), len(bundle.test)) == (60, 30)
    assert bundle.classes == SYNTHETIC_CLASSES
    assert err == ""
    assert out.count("\n") == 1 and out.startswith("Data: offline synthetic shapes")
    assert "COURSE_DATA=cifar10" in out


def test_verbose_false_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    get_datasets("synthetic", budget=small_cpu_budget(), verbose=False)
    assert capsys.readouterr() == ("", "")


def test_synthetic_train_and_test_differ() -> None:
    bundle = get_datasets("synthetic", budget=replace(small_cpu_budget(), test_size=60), verbose=False)
    assert not torch.equal(bundle.train.tensors[0], bundle.test.tensors[0])


def test_synthetic_respects_budget_image_size() -> None:
    bundle = get_datasets("synthetic", budget=small_cpu_budget(image_size=16), verbose=False)
    assert bundle.train[0][0].shape == (3, 16, 16)


def test_auto_uses_synthetic_for_tiny_budget(failing_cifar, capsys) -> None:
    bundle = get_datasets(budget=get_budget("tiny"))
    assert bundle.name == "synthetic" and failing_cifar.calls == []
    assert "tiny" in capsys.readouterr().out


def test_auto_uses_synthetic_under_nbgrader(monkeypatch, failing_cifar, capsys) -> None:
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    bundle = get_datasets("auto", budget=small_cpu_budget())
    assert bundle.name == "synthetic" and failing_cifar.calls == []
    assert "NBGRADER_EXECUTION" in capsys.readouterr().out


def test_auto_falls_back_when_download_fails(tmp_path, failing_cifar, capsys) -> None:
    previous_timeout = socket.getdefaulttimeout()
    bundle = get_datasets(budget=small_cpu_budget(), root=tmp_path)
    out, err = capsys.readouterr()
    assert bundle.name == "synthetic" and len(bundle.train) == 60
    assert failing_cifar.calls[0] == {"root": str(tmp_path), "train": True, "download": True}
    assert failing_cifar.timeout_seen == data.DOWNLOAD_TIMEOUT_S  # a dead network cannot hang
    assert socket.getdefaulttimeout() == previous_timeout  # and the timeout is restored
    assert "could not be downloaded" in out and "URLError" in out and "no route to host" in out
    assert out.count("\n") == 1 and err == ""


def test_explicit_cifar10_failure_raises_helpful_error(tmp_path, failing_cifar) -> None:
    with pytest.raises(RuntimeError, match="COURSE_DATA=synthetic") as info:
        get_datasets("cifar10", budget=small_cpu_budget(), root=tmp_path, verbose=False)
    assert "no route to host" in str(info.value)
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_env_course_data_selects_source(monkeypatch, failing_cifar) -> None:
    monkeypatch.setenv("COURSE_DATA", "cifar10")
    with pytest.raises(RuntimeError):
        get_datasets(budget=get_budget("tiny"), verbose=False)  # explicit cifar10 beats "tiny means synthetic"
    monkeypatch.setenv("COURSE_DATA", "imagenet")
    with pytest.raises(ValueError, match="auto, synthetic, cifar10"):
        get_datasets(budget=get_budget("tiny"), verbose=False)


def test_cifar10_present_is_subsampled_deterministically(tmp_path, present_cifar, capsys) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    budget = small_cpu_budget()
    bundle = get_datasets(budget=budget, root=tmp_path)
    out = capsys.readouterr().out
    assert bundle.name == "cifar10" and bundle.classes[0] == "airplane" and len(bundle.classes) == 10
    assert (len(bundle.train), len(bundle.test)) == (60, 30)
    images, labels = bundle.train.tensors
    assert images.shape == (60, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0.0 <= images.min() and images.max() <= 1.0
    # Pixels are the fake dataset's pixels (NHWC uint8 -> NCHW float), not something else.
    raw = present_cifar(str(tmp_path), train=True, download=False).data
    matches = [torch.equal(images[0], torch.from_numpy(raw[i]).permute(2, 0, 1).float() / 255) for i in range(100)]
    assert sum(matches) == 1
    again = get_datasets(budget=budget, root=tmp_path, verbose=False)
    assert torch.equal(again.train.tensors[0], images)
    assert out.startswith("Data: CIFAR-10") and "found in" in out and str(tmp_path) in out


def test_cifar10_is_resized_to_budget_and_uses_data_dir_env(tmp_path, monkeypatch, present_cifar) -> None:
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "store"))
    bundle = get_datasets("cifar10", budget=small_cpu_budget(image_size=16), verbose=False)
    assert bundle.train.tensors[0].shape == (60, 3, 16, 16)
    assert bundle.train.tensors[0].max() <= 1.0
    assert present_cifar.roots == [str(tmp_path / "store")] * 2


def test_load_cifar10_passes_arguments(tmp_path: Path, present_cifar) -> None:
    ds = load_cifar10(tmp_path, train=False, download=False)
    assert len(ds) == 40 and present_cifar.roots == [str(tmp_path)]


# --------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------


def test_make_loaders_is_seeded() -> None:
    bundle = get_datasets("synthetic", budget=small_cpu_budget(), verbose=False)

    def first_labels(seed: int) -> torch.Tensor:
        train_loader, _ = make_loaders(bundle, batch_size=16, seed=seed)
        return next(iter(train_loader))[1]

    assert torch.equal(first_labels(0), first_labels(0))
    assert not torch.equal(first_labels(0), first_labels(1))
    train_loader, test_loader = make_loaders(bundle, batch_size=16)
    assert train_loader.num_workers == 0 and test_loader.num_workers == 0
    assert [len(y) for _, y in test_loader] == [16, 14]
    # The test loader is not shuffled.
    assert torch.equal(torch.cat([y for _, y in test_loader]), bundle.test.tensors[1])
