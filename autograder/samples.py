"""Sample submissions that exercise the grading pipeline end to end.

For every assignment, ``build_samples`` writes, in nbgrader's ``submitted``
layout (``<dest>/<student>/<assignment>/<notebook>.ipynb``):

* ``reference``: the release notebook with every solution cell filled in from
  the source notebook (markers removed). Generated at grade time from
  ``solutions/``, so it never drifts; it must get full marks.
* ``untouched``: the release notebook exactly as shipped; it must get 0.
* ``malformed``: a notebook file that is not valid JSON; it must be reported as
  an *error*, never as a 0.
* one student per entry of :data:`FAULTS` for that assignment: the reference
  with only the named solution cells replaced by a plausible buggy answer.

A new assignment adds its faults to :data:`FAULTS` in a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import RELEASE_DIRNAME, course_root, source_notebooks
from .solutions import grade_id, is_solution, strip_markers


@dataclass(frozen=True)
class Fault:
    """A deliberately wrong submission: replace solution cells by ``grade_id``."""

    cells: dict[str, str]
    #: Autograded points expected (full marks minus the tests the bug breaks).
    expected: float
    note: str = ""


FAULTS: dict[str, dict[str, Fault]] = {
    # The test suite's tiny fixture course (tests/fixtures/course).
    "00_fixture": {
        "wrong_add": Fault(note="subtracts", expected=2, cells={"add": "def add(a, b):\n    return a - b\n"}),
    },
    "01_pooling": {
        "wrong_max_pool": Fault(
            note="max_pool_2d averages each window instead of taking its maximum",
            expected=10,
            cells={
                "max_pool_2d": '''\
def max_pool_2d(x, kernel_size=2, stride=2):
    """Max pooling of a (H, W) or (C, H, W) array (buggy: averages instead)."""
    x = np.asarray(x)
    if kernel_size > x.shape[-2] or kernel_size > x.shape[-1]:
        raise ValueError("kernel_size is larger than the input")
    h_out = (x.shape[-2] - kernel_size) // stride + 1
    w_out = (x.shape[-1] - kernel_size) // stride + 1
    out = np.zeros(x.shape[:-2] + (h_out, w_out), dtype=x.dtype)
    for i in range(h_out):
        for j in range(w_out):
            window = x[..., i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size]
            out[..., i, j] = window.mean(axis=(-2, -1))  # BUG: should be max
    return out
''',
            },
        ),
    },
    "02_stride": {
        "wrong_output_size": Fault(
            note="compute_output_size forgets the + 1 that counts the window at position 0",
            expected=5,
            cells={
                "compute_output_size": '''\
def compute_output_size(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Output size along one axis (buggy: forgets the + 1 that counts the first window)."""
    room = input_size + 2 * padding - dilation * (kernel_size - 1) - 1
    size = math.ceil(room / stride) if ceil_mode else room // stride   # BUG: no + 1
    if size < 1:
        raise ValueError("the kernel does not fit in the input")
    return size
''',
            },
        ),
    },
    "03_vgg": {
        "wrong_vgg_block": Fault(
            note="VGGBlock forgets the 2x2 max pool at the end of the block",
            expected=4,
            cells={
                "vgg_block": '''\
class VGGBlock(nn.Module):
    """num_convs 3x3 convolutions with ReLU, then a 2x2 max pool (buggy: no pool)."""

    def __init__(self, in_channels, out_channels, num_convs):
        super().__init__()
        layers = []
        for i in range(num_convs):
            layers.append(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1))
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)  # BUG: the block should end with nn.MaxPool2d(2, 2)

    def forward(self, x):
        return self.layers(x)
''',
            },
        ),
    },
    "04_resnet": {
        "wrong_bottleneck_stride": Fault(
            note="BottleneckBlock puts the stride on the first 1x1 convolution instead of the 3x3",
            expected=9,
            cells={
                "bottleneck_block": '''\
class BottleneckBlock(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, + shortcut, ReLU (buggy: the stride sits on the first 1x1)."""

    expansion = 4

    def __init__(self, in_channels, internal_channels, stride=1):
        super().__init__()
        out_channels = internal_channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, internal_channels, 1, stride=stride, bias=False)  # BUG
        self.bn1 = nn.BatchNorm2d(internal_channels)
        self.conv2 = nn.Conv2d(internal_channels, internal_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(internal_channels)
        self.conv3 = nn.Conv2d(internal_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.shortcut(x))
''',
            },
        ),
    },
    "05_efficientnet": {
        # 05: sample faults go here
        "wrong_mbconv_activation": Fault(
            note="MBConvBlock applies SiLU after the projection's BatchNorm: the projection is no longer linear",
            expected=8,
            cells={
                "mbconv_block": '''\
class MBConvBlock(nn.Module):
    """Inverted residual (buggy: an activation after the projection)."""

    def __init__(self, in_channels, out_channels, expand_ratio, kernel_size, stride, se_ratio=0.25,
                 stochastic_depth_prob=0.0):
        super().__init__()
        expanded = int(in_channels * expand_ratio)
        layers = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(in_channels, expanded, 1, bias=False), nn.BatchNorm2d(expanded), nn.SiLU()]
        layers += [nn.Conv2d(expanded, expanded, kernel_size, stride=stride, padding=kernel_size // 2,
                             groups=expanded, bias=False), nn.BatchNorm2d(expanded), nn.SiLU()]
        layers.append(SqueezeExcitation(expanded, max(1, int(in_channels * se_ratio))))
        layers += [nn.Conv2d(expanded, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                   nn.SiLU()]  # BUG: the projection should be linear
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.p = stochastic_depth_prob

    def forward(self, x):
        out = self.block(x)
        if not self.use_residual:
            return out
        if self.training and self.p > 0:
            keep = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.p).to(out.dtype)
            out = out * keep / (1 - self.p)
        return out + x
''',
            },
        ),
    },
    "06_design_principles": {
        # 06: sample faults go here
        "relu_after_addition": Fault(
            note="ModernBlock applies a ReLU after the addition, which a pre-activation block must not",
            expected=6,
            cells={
                "modern_block": '''\
class ModernBlock(nn.Module):
    """Pre-activation bottleneck with SE (buggy: a ReLU after the addition, as in a post-activation block)."""

    def __init__(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        super().__init__()
        mid, squeezed = out_channels // 4, max(1, int(out_channels * se_ratio))
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(out_channels, squeezed, 1), nn.ReLU(),
                                nn.Conv2d(squeezed, out_channels, 1), nn.Sigmoid())
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x):
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(h)))
        h = self.conv3(F.relu(self.bn3(h)))
        return F.relu(h * self.se(h) + self.shortcut(x))     # BUG: nothing may follow the addition
''',
            },
        ),
    },
    "07_exercises": {
        # 07: sample faults go here
        "wrong_lp_pooling": Fault(
            note="LPPooling leaves out the 1/N: it computes torch's LPPool2d, (sum x^p)^(1/p)",
            expected=19,
            cells={
                "lp_pooling": '''\
class LPPooling(nn.Module):
    """LP pooling (buggy: no 1/N, which is torch.nn.LPPool2d's formula)."""

    def __init__(self, kernel_size, stride=None, p=2):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.p = p

    def forward(self, x):
        window_sum = F.avg_pool2d(x.pow(self.p), self.kernel_size, self.stride) * self.kernel_size ** 2  # BUG
        return window_sum.pow(1.0 / self.p)
''',
            },
        ),
    },
}

REFERENCE, UNTOUCHED, MALFORMED = "reference", "untouched", "malformed"



def fill_solutions(release_nb, source_nb, replacements: dict[str, str] | None = None):
    """Copy of ``release_nb`` whose solution cells hold the source's solution.

    ``replacements`` maps grade ids to the text to use instead (faults).
    """
    release_nb = nbformat.from_dict(release_nb)  # deep copy
    solutions = {
        grade_id(c): strip_markers(c.source)
        for c in source_nb.cells
        if is_solution(c) and grade_id(c)
    }
    replacements = dict(replacements or {})
    for cell in release_nb.cells:
        gid = grade_id(cell)
        if is_solution(cell) and gid in solutions:
            cell.source = replacements.get(gid, solutions[gid])
    return release_nb


def release_notebook_path(assignment: str, name: str, root: Path) -> Path:
    return root / RELEASE_DIRNAME / assignment / name


def build_samples(
    assignment: str,
    dest: Path,
    root: Path | None = None,
    release_dir: Path | None = None,
    faults: dict[str, Fault] | None = None,
) -> dict[str, float | None]:
    """Write the sample submissions of ``assignment`` under ``dest``.

    ``release_dir`` is where ``<assignment>/<notebook>.ipynb`` release notebooks
    are read from (default: the committed ``notebooks/``). Returns the expected
    autograded score of each sample student, ``None`` meaning "must be an error"
    (the full-marks value of ``reference`` is filled in by the caller, who knows
    the maximum: it is given as ``float('inf')`` here).
    """
    root = Path(root or course_root())
    release_dir = Path(release_dir or root / RELEASE_DIRNAME)
    faults = FAULTS.get(assignment, {}) if faults is None else faults
    expected: dict[str, float | None] = {REFERENCE: float("inf"), UNTOUCHED: 0.0, MALFORMED: None}
    solution_ids: set[str] = set()
    for src_path in source_notebooks(assignment, root):
        source_nb = nbformat.read(src_path, as_version=4)
        solution_ids |= {grade_id(c) for c in source_nb.cells
                         if is_solution(c)}
        rel_path = release_dir / assignment / src_path.name
        release_text = rel_path.read_text(encoding="utf-8")
        release_nb = nbformat.reads(release_text, as_version=4)

        def write(student: str, text: str) -> None:
            d = Path(dest) / student / assignment
            d.mkdir(parents=True, exist_ok=True)
            (d / src_path.name).write_text(text, encoding="utf-8")

        write(REFERENCE, nbformat.writes(fill_solutions(release_nb, source_nb)))
        write(UNTOUCHED, release_text)
        # Truncated JSON: what a crashed editor or a bad merge leaves behind.
        write(MALFORMED, release_text[: len(release_text) // 2])
        for student, fault in faults.items():
            write(student, nbformat.writes(fill_solutions(release_nb, source_nb, fault.cells)))
            expected[student] = float(fault.expected)
    for student, fault in faults.items():
        unknown = set(fault.cells) - solution_ids
        if unknown:
            raise KeyError(f"sample {student!r} of {assignment}: no solution cell {sorted(unknown)}; "
                           f"known: {sorted(solution_ids)}")
    return expected
