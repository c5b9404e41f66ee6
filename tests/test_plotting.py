"""Tests for helpers.plotting (Agg backend, figures closed after each test)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in tests; must come before pyplot is used

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from helpers.plotting import plot_history, show_feature_maps, show_images
from helpers.training import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_history(offset: float = 0.0, with_test: bool = True) -> History:
    h = History(train_loss=[2.0, 1.5, 1.0], train_acc=[0.2, 0.4, 0.6], epoch_seconds=[1.0, 1.0, 1.0])
    if with_test:
        h.test_loss = [2.1, 1.7, 1.4]
        h.test_acc = [0.15 + offset, 0.3 + offset, 0.5 + offset]
    return h


def test_plot_history_single_run() -> None:
    fig = plot_history(make_history())
    assert isinstance(fig, Figure)
    loss_ax, acc_ax = fig.axes[:2]
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 2  # train + test
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [20, 40, 60])  # percent
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), [2.1, 1.7, 1.4])
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3]


def test_plot_history_overlays_runs_with_legend() -> None:
    fig = plot_history({"plain": make_history(), "resnet": make_history(0.1, with_test=False)})
    acc_ax = fig.axes[1]
    assert len(acc_ax.lines) == 3
    labels = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert labels == ["plain train", "plain test", "resnet train"]
    assert acc_ax.lines[0].get_color() != acc_ax.lines[2].get_color()


def test_plot_history_into_given_axes_and_bad_input() -> None:
    fig, axes = plt.subplots(1, 2)
    assert plot_history(make_history(), ax=axes) is fig
    with pytest.raises(TypeError, match="History"):
        plot_history([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", ["chw", "hwc", "gray"])
def test_show_images_grid(layout: str) -> None:
    images = torch.rand(10, 3, 8, 8) * 1.5  # out of range values get clipped
    if layout == "hwc":
        images = images.permute(0, 2, 3, 1)
    elif layout == "gray":
        images = images[:, 0]
    fig = show_images(images, labels=torch.arange(10), class_names=[f"c{i}" for i in range(10)], ncols=4)
    assert len(fig.axes) == 12  # 3 rows x 4 columns, 2 left empty
    shown = [a for a in fig.axes if a.images]
    assert len(shown) == 10
    assert shown[3].get_title() == "c3"
    data = shown[0].images[0].get_array()
    assert data.shape[:2] == (8, 8) and float(np.max(data)) <= 1.0


def test_show_images_without_labels_and_bad_shape() -> None:
    fig = show_images(np.random.rand(3, 3, 4, 4))
    assert [a.get_title() for a in fig.axes] == ["", "", ""]
    with pytest.raises(ValueError, match="shape"):
        show_images(torch.rand(3, 4))


def test_show_feature_maps() -> None:
    maps = torch.arange(20 * 5 * 5, dtype=torch.float32).reshape(1, 20, 5, 5)
    fig = show_feature_maps(maps, max_maps=10, title="conv1")
    shown = [a for a in fig.axes if a.images]
    assert len(shown) == 10
    np.testing.assert_array_equal(shown[2].images[0].get_array(), maps[0, 2].numpy())
    assert fig._suptitle is not None and fig._suptitle.get_text() == "conv1"
    with pytest.raises(ValueError, match="activations\\[0\\]"):
        show_feature_maps(torch.rand(2, 4, 5, 5))
