"""Answers that borrow the library the checks compare with.

A model-building exercise is graded by comparing the student's model with
torchvision's. A model that *is* torchvision's (or contains its blocks, or
calls its functional forms) would be compared with itself, so every model
check refuses it with one message, written here once:

* :func:`torchvision_models` -- torchvision's model module, imported lazily;
* :func:`own_layers_hint` -- the hint that names the layers to build from;
* :func:`refuse_torchvision` -- walk a model and refuse torchvision's classes,
  except the trusted stand-ins a check itself puts in.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from torch import nn

from .core import CheckFailed


def torchvision_models(name: str | None = None) -> ModuleType:
    """``torchvision.models`` or ``torchvision.models.<name>``, imported on first use."""
    return importlib.import_module("torchvision.models" + (f".{name}" if name else ""))


def torchvision_ops() -> ModuleType:
    """``torchvision.ops``, imported on first use."""
    return importlib.import_module("torchvision.ops")


def own_layers_hint(layers: str, extra: str = "") -> str:
    """"Build the layers yourself from <layers>; torchvision is only what the check compares ..."."""
    return (f"Build the layers yourself from {layers}{extra}; torchvision is only what the check compares "
            "your answer with.")


def is_torchvision_class(cls: type) -> bool:
    return (cls.__module__ or "").split(".")[0] == "torchvision"


def torchvision_base(cls: type) -> type | None:
    """The first torchvision class among ``cls`` and its bases (a subclass borrows its parent's code)."""
    return next((c for c in cls.__mro__ if is_torchvision_class(c)), None)


def refuse_torchvision(model: nn.Module, what: str, *, hint: str, trusted: tuple[type, ...] = (),
                       classes: tuple[type, ...] | None = None,
                       expected: str = "layers built from nn.Conv2d, nn.BatchNorm2d, nn.ReLU, ...") -> None:
    """Fail when ``model`` is or contains a torchvision module class.

    ``classes`` narrows the refusal to those classes (and their subclasses); by default
    every class defined in torchvision is refused. A module of a ``trusted`` class is
    accepted with everything inside it: the checks put torchvision's blocks behind the
    exercise's constructor in place of the student's.
    """
    def refused(module: nn.Module) -> bool:
        if classes is None:
            return torchvision_base(type(module)) is not None
        return isinstance(module, classes)

    def walk(module: nn.Module, name: str) -> None:
        if trusted and isinstance(module, trusted):
            return
        if refused(module):
            cls = type(module)
            label = cls.__name__
            if not is_torchvision_class(cls):
                base = (next(c for c in classes if isinstance(module, c)) if classes is not None
                        else torchvision_base(cls))
                label = f"{cls.__name__}, a subclass of torchvision's {base.__name__}"
                kind = label
            else:
                kind = f"torchvision's {label}"
            where = f"your model's `{name}` is" if name else "your model is"
            raise CheckFailed(what, f"{where} {kind}, so the check would compare torchvision with itself.",
                              expected=expected, got=f"{cls.__module__}.{cls.__qualname__}", hint=hint)
        for child_name, child in module.named_children():
            walk(child, f"{name}.{child_name}" if name else child_name)

    walk(model, "")
