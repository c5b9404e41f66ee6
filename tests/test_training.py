"""Tests for helpers.training."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.device import seed_everything
from helpers.training import History, evaluate, train


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NBGRADER_EXECUTION", "COURSE_DEVICE"):
        monkeypatch.delenv(name, raising=False)


def separable_data(n: int = 256, seed: int = 0) -> TensorDataset:
    """Two Gaussian clusters in 8-D: easy enough that a linear model learns it in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.randn(n, 8, generator=g) + (labels[:, None].float() * 2 - 1) * 1.5
    return TensorDataset(x, labels)


def loaders(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    train_loader = DataLoader(separable_data(), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return train_loader, DataLoader(separable_data(128, seed=1), batch_size=64)


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


def run(**kwargs) -> tuple[nn.Module, History]:
    seed_everything(0)
    model = make_model()
    train_loader, test_loader = loaders()
    history = train(model, train_loader, test_loader, device="cpu", progress=False, **kwargs)
    return model, history


def test_training_learns_and_records_history() -> None:
    _, history = run(epochs=4, lr=1e-2)
    assert history.epochs == 4
    for series in (history.train_loss, history.train_acc, history.test_loss, history.test_acc, history.epoch_seconds):
        assert len(series) == 4
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.test_acc[-1] > 0.9
    assert history.best_test_acc == max(history.test_acc)
    assert all(s > 0 for s in history.epoch_seconds)


def test_sgd_also_learns() -> None:
    _, history = run(epochs=3, lr=0.05, optimizer="sgd")
    assert history.test_acc[-1] > 0.9


def test_unknown_optimizer() -> None:
    with pytest.raises(ValueError, match="adam, sgd"):
        run(epochs=1, optimizer="lbfgs")


def test_training_is_deterministic_after_seed_everything() -> None:
    model_a, history_a = run(epochs=2)
    model_b, history_b = run(epochs=2)
    assert history_a.train_loss == history_b.train_loss and history_a.test_acc == history_b.test_acc
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(p, q)


def test_without_test_loader() -> None:
    seed_everything(0)
    history = train(make_model(), loaders()[0], epochs=1, device="cpu", progress=False)
    assert history.test_acc == [] and history.best_test_acc is None
    assert "test" not in history.summary()


def test_summary_text() -> None:
    h = History([1.0, 0.5], [0.5, 0.75], [1.1, 0.6], [0.4, 0.7], [1.0, 2.0])
    assert h.summary() == (
        "2 epoch(s) in 3.0 s: train loss 0.500, train acc 75.0%, "
        "test loss 0.600, test acc 70.0% (best 70.0% at epoch 2)."
    )
    assert History().summary() == "No epochs were trained."


def test_evaluate_matches_manual_computation_and_restores_mode() -> None:
    model = nn.Linear(8, 2)
    model.train()
    data = separable_data(100)
    loss, acc = evaluate(model, DataLoader(data, batch_size=30), device="cpu")
    x, y = data.tensors
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert model.training  # restored


def test_progress_bar_goes_to_stderr_unless_nbgrader(monkeypatch, capsys) -> None:
    run(epochs=1)  # progress=False
    assert capsys.readouterr().err == ""
    seed_everything(0)
    train(make_model(), loaders()[0], epochs=1, device="cpu", progress=True)
    assert "Epoch 1/1" in capsys.readouterr().err
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    seed_everything(0)
    train(make_model(), loaders()[0], epochs=1, device="cpu", progress=True)
    assert capsys.readouterr() == ("", "")


def test_diverging_loss_raises_helpful_error() -> None:
    seed_everything(0)
    model = nn.Linear(8, 2)
    x = torch.full((8, 8), float("nan"))
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        train(model, DataLoader(TensorDataset(x, torch.zeros(8, dtype=torch.long))), epochs=1, device="cpu", progress=False)


def test_empty_loader() -> None:
    empty = DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="empty"):
        train(nn.Linear(8, 2), empty, epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="empty"):
        evaluate(nn.Linear(8, 2), empty, device="cpu")
