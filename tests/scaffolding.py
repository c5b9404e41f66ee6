"""What the check tests share: the stubs of an untouched notebook and the names an answer cell sees.

``conftest.py`` also offers each of these as a fixture; import them directly where a
module-level table (``parametrize``) needs them.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: The names a notebook's imports cell gives every answer cell.
IMPORTS = {"nn": nn, "torch": torch, "F": F, "math": math, "np": np}

STUB_MESSAGE = "Replace this line with your solution."


class Unattempted(nn.Module):
    """A class exercise as released: its constructor raises NotImplementedError."""

    expansion = 1

    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError(STUB_MESSAGE)


class UnattemptedBottleneck(Unattempted):
    """An untouched bottleneck block (it keeps the class attribute ``expansion = 4``)."""

    expansion = 4


def unattempted(*args, **kwargs):
    """A function exercise as released."""
    raise NotImplementedError(STUB_MESSAGE)
