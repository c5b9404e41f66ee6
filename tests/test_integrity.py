"""The grader's static scan of answer cells (autograder.integrity): honest styles are not hits,
tampering and forbidden APIs are, with the name that was used."""
import textwrap

import pytest

from autograder.integrity import scan, scan_cells

HONEST = {
    "setattr on self in a loop": """
        class ResNet(nn.Module):
            def __init__(self, widths=(64, 128, 256, 512)):
                super().__init__()
                for i, w in enumerate(widths, start=1):
                    setattr(self, f"layer{i}", nn.Conv2d(w, w, 3, padding=1))
            def forward(self, x):
                for i in range(1, 5):
                    x = getattr(self, f"layer{i}")(x)
                return x
    """,
    "setattr on a container the cell made": """
        blocks = nn.Module()
        for i in range(3):
            setattr(blocks, f"block{i}", nn.ReLU())
    """,
    "add_module and ModuleDict": """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.stages = nn.ModuleDict()
                for name in ("a", "b"):
                    self.add_module(name, nn.Identity())
                    self.stages[name] = nn.Identity()
    """,
    "a variable named like a module": """
        signal = x.mean()
        def f(subprocess):
            return subprocess + 1
    """,
    "adaptive pooling where the exercise allows it": """
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))
    """,
    "a magic line": """
        %matplotlib inline
        y = x + 1
    """,
}

TAMPERING = {
    "setattr on a library module": ("setattr(torch, 'allclose', lambda *a, **k: True)", "setattr"),
    "setattr on an imported module": ("import numpy as np\nsetattr(np, 'allclose', lambda *a, **k: True)",
                                      "setattr"),
    "the checks imported": ("from helpers import checks\nchecks.check_vgg16 = print", "checks"),
    "the checks by their module": ("import helpers.checks as c", "helpers.checks"),
    "builtins rebound": ("import builtins\nbuiltins.print = None", "builtins"),
    "sys.modules": ("import sys\nsys.modules['helpers.checks'] = None", "sys.modules"),
    "IPython's hooks": ("get_ipython().ast_transformers.append(None)", "get_ipython"),
    "the caller's frames": ("import sys\nf = sys._getframe(1)", "sys._getframe"),
    "a tracer": ("import sys\nsys.settrace(lambda *a: None)", "sys.settrace"),
    "encoded exec": ("exec(bytes.fromhex('7072696e74').decode())", "exec"),
    "the solutions": ("open('../../solutions/01_pooling/01_pooling.ipynb')", "solutions"),
    "importlib": ("import importlib\nm = importlib.import_module('helpers.checks')", "importlib"),
}


@pytest.mark.parametrize("source", HONEST.values(), ids=HONEST.keys())
def test_honest_styles_are_not_hits(source):
    assert scan(textwrap.dedent(source)) == []


@pytest.mark.parametrize("source, named", TAMPERING.values(), ids=TAMPERING.keys())
def test_tampering_is_a_hit_naming_what_was_used(source, named):
    reasons = scan(source)
    assert reasons, f"no hit for {source!r}"
    assert any(named in r for r in reasons), reasons


def test_forbidden_api_is_a_hit_only_in_its_exercise():
    source = "class GAP(nn.Module):\n    def forward(self, x):\n        return nn.AdaptiveAvgPool2d(1)(x).flatten(1)\n"
    assert scan(source) == []
    reasons = scan(source, ["nn.AdaptiveAvgPool2d"])
    assert reasons == ["uses an API this exercise forbids: `nn.AdaptiveAvgPool2d`"]
    # Aliased through an import, it is still found.
    aliased = "from torch.nn import AdaptiveAvgPool2d as P\ny = P(1)(x)\n"
    assert scan(aliased, ["torch.nn.AdaptiveAvgPool2d"])


def test_scan_cells_names_the_cell():
    out = scan_cells([("answer cell gap", "import sys\nsys.modules.clear()"), ("answer cell ok", "y = 1")])
    assert len(out) == 1 and out[0].startswith("answer cell gap ")
