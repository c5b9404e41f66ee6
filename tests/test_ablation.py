"""helpers.ablation: one recipe, several seeds, and a verdict that knows what is noise."""
import math

import matplotlib
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from helpers.ablation import (BASELINE, OUTSIDE, WITHIN, Recipe, RunResult, bar_chart, compare_runs,
                              format_table, one_cycle, one_thread, run_seeds, summarise, train_with_recipe)
from helpers.data import make_synthetic_dataset

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def data():
    train = TensorDataset(*make_synthetic_dataset(128, 16, seed=0))
    test = TensorDataset(*make_synthetic_dataset(64, 16, seed=1))
    return train, test


def tiny_cnn(width=8):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def test_one_cycle_rises_then_falls_for_any_number_of_steps():
    for total in (1, 2, 4, 7, 100):
        factors = [one_cycle(step, total) for step in range(total)]
        assert all(0 < f <= 1 for f in factors)
        assert factors[0] == pytest.approx(1 / 25) or total == 1
        peak = factors.index(max(factors))
        assert all(a <= b for a, b in zip(factors[:peak], factors[1:peak + 1]))
        assert all(a >= b for a, b in zip(factors[peak:], factors[peak + 1:]))
    assert one_cycle(99, 100) < 0.01


def test_recipe_describes_itself():
    text = Recipe(epochs=3, batch_size=32, lr=2e-3).describe()
    assert "3 epoch(s)" in text and "batch size 32" in text and "0.002" in text


def test_training_is_reproducible_and_learns(data):
    train, test = data
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        with one_thread():
            runs.append(train_with_recipe(tiny_cnn(), train, test, Recipe(epochs=2, batch_size=32), seed=0,
                                          device="cpu"))
    assert runs[0].test_acc == runs[1].test_acc and runs[0].train_loss == runs[1].train_loss
    assert 0 <= runs[0].test_acc <= 1 and runs[0].seconds > 0 and not runs[0].diverged
    assert runs[0].train_loss < math.log(10)          # below chance level: it learned something


def test_a_diverging_run_is_reported_not_raised(data):
    train, test = data
    model = tiny_cnn()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    run = train_with_recipe(model, train, test, Recipe(epochs=1), device="cpu")
    assert run.diverged and 0 <= run.test_acc <= 1


def test_empty_training_set_is_an_error(data):
    _, test = data
    empty = TensorDataset(torch.zeros(0, 3, 16, 16), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        train_with_recipe(tiny_cnn(), empty, test, Recipe(epochs=1), device="cpu")


def test_run_seeds_summarise_and_plot(data, capsys):
    train, test = data
    builders = {"narrow": lambda: tiny_cnn(4), "wide": lambda: tiny_cnn(16)}
    with one_thread():
        results = run_seeds(builders, train, test, Recipe(epochs=1, batch_size=64), seeds=(0, 1), device="cpu")
    assert list(results) == ["narrow", "wide"] and all(len(runs) == 2 for runs in results.values())
    assert [r.seed for r in results["wide"]] == [0, 1] and results["wide"][0].name == "wide"
    assert capsys.readouterr().out.count("test accuracy") == 4
    rows = summarise(results, builders, baseline="narrow", input_shape=(1, 3, 16, 16))
    assert rows[0].verdict == BASELINE and rows[1].verdict in (WITHIN, OUTSIDE)
    assert rows[1].parameters > rows[0].parameters and rows[1].macs > rows[0].macs
    table = format_table(rows)
    assert "narrow" in table and "baseline" in table
    assert bar_chart(rows) is not None
    with pytest.raises(KeyError, match="baseline"):
        summarise(results, builders, baseline="missing", input_shape=(1, 3, 16, 16))


def test_verdict_needs_ranges_that_do_not_overlap():
    assert compare_runs([0.8, 0.82], [0.6, 0.7]) == OUTSIDE
    assert compare_runs([0.6, 0.7], [0.8, 0.82]) == OUTSIDE
    assert compare_runs([0.8, 0.6], [0.7, 0.75]) == WITHIN
    assert compare_runs([0.7, 0.7], [0.7, 0.7]) == WITHIN


def test_rows_mean_and_spread():
    results = {"a": [RunResult("a", 0, 0.5, 1.0, 2.0), RunResult("a", 1, 0.7, 1.0, 4.0)]}
    rows = summarise(results, {"a": tiny_cnn}, input_shape=(1, 3, 16, 16))
    assert rows[0].mean == pytest.approx(0.6) and rows[0].spread == pytest.approx(0.2)
    assert rows[0].seconds == pytest.approx(3.0) and rows[0].verdict == ""
