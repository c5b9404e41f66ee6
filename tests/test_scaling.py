"""helpers.scaling: per-stage profiles of a network and the drawing of its shape."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

from helpers.inspection import count_macs, count_parameters  # noqa: E402
from helpers.scaling import draw_network_shape, format_profile, stage_profile  # noqa: E402


@pytest.fixture(scope="module")
def b0():
    with torch.device("meta"):
        return torchvision.models.efficientnet_b0(weights=None)


def test_profile_of_b0_adds_up(b0):
    rows = stage_profile(b0, 224)
    assert [r.name for r in rows] == ["stem", *(f"stage {i}" for i in range(1, 8)), "head", "classifier"]
    assert [r.blocks for r in rows if r.is_stage] == [1, 2, 2, 3, 3, 4, 1]
    assert [r.channels for r in rows if r.is_stage] == [16, 24, 40, 80, 112, 192, 320]
    assert [r.side for r in rows[:-1]] == [112, 112, 56, 28, 14, 14, 7, 7, 7]
    assert sum(r.parameters for r in rows) == count_parameters(b0) == 5_288_548
    assert sum(r.macs for r in rows) == count_macs(b0, (1, 3, 224, 224), device="meta")
    assert rows[-1].parameters == 1280 * 1000 + 1000


def test_profile_keeps_the_mode_and_takes_rectangles(b0):
    b0.train()
    rows = stage_profile(b0, (96, 64), include_classifier=False)
    assert b0.training and all(m.training for m in b0.modules())
    assert rows[-1].name == "head" and rows[-1].side == 3           # 96 / 32


def test_profile_needs_features():
    with pytest.raises(TypeError, match="features"):
        stage_profile(nn.Sequential(nn.Conv2d(3, 4, 3)), 32)


def test_format_and_draw(b0):
    rows = stage_profile(b0, 224)
    text = format_profile(rows)
    assert "5,288,548" in text and "stage 7" in text and text.count("\n") == len(rows) + 1
    fig = draw_network_shape(rows, rows, title="B0 against itself")
    assert fig.axes[0].get_title() == "B0 against itself"
    assert len(fig.axes[0].patches) == 2 * 7                         # seven stages, twice
    plt.close(fig)
