"""The explorers draw a picture at once and redraw it when a control moves."""
import matplotlib
import numpy as np
import pytest

from helpers.widgets import draw_pooling, pool_image, pooling_explorer

PNG_SIGNATURE = b"\x89PNG"


@pytest.fixture(autouse=True)
def agg_backend():
    matplotlib.use("Agg")


def test_pool_image_uses_torch_pooling():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(pool_image(image, "max", 2, 2), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(pool_image(image, "avg", 2, 2), [[2.5, 4.5], [10.5, 12.5]])


def test_draw_pooling_titles_the_output_size():
    fig = draw_pooling(np.zeros((12, 8), dtype=np.float32), kernel_size=4, stride=2, mode="max")
    assert "5×3" in fig.axes[1].get_title()


def test_pooling_explorer_redraws_on_change():
    explorer = pooling_explorer(np.random.default_rng(0).random((32, 32), dtype=np.float32))
    *controls, image = explorer.children
    first = bytes(image.value)
    assert first.startswith(PNG_SIGNATURE)
    kernel = next(c for c in controls if c.description == "kernel")
    kernel.value = 8
    assert bytes(image.value).startswith(PNG_SIGNATURE) and bytes(image.value) != first
