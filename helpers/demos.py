"""Demos that run on the student's code, and what they do while it is unsolved.

A demonstration cell that calls a function from an earlier exercise would
otherwise stop JupyterLab's *Run All* with a long traceback while that
exercise is still a stub. Wrap it instead::

    with needs_your_code("max_pool_2d", exercise=1):
        t_loop = best_time(lambda: max_pool_2d(feature_map), number=1)
        ...

and, where later cells need the object the exercise builds, fall back to
something that is *not* the exercise's answer (a torchvision model, a
PyTorch function)::

    model = your_code_or(lambda: VGG(config), fallback=lambda: vgg11_bn(num_classes=10),
                         name="VGG", exercise=4, fallback_name="torchvision's vgg11_bn")

Either way the cell prints one line saying what is missing and the notebook
carries on. Only the student's own failure is caught: ``NotImplementedError``
(the untouched stub) or another exception raised while running the block.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

SKIPPED = "⏭"
BROKEN = "⚠"


def _label(name: str, exercise: int | str | None) -> str:
    several = isinstance(exercise, str) and (" and " in exercise or " to " in exercise)
    where = f" (exercise{'s' if several else ''} {exercise})" if exercise is not None else ""
    return f"`{name}`{where}"


def skipped_message(name: str, exercise: int | str | None = None) -> str:
    return (f"{SKIPPED} This demo needs your {_label(name, exercise)}, which is not written yet; "
            "solve that exercise and run this cell again.")


def broken_message(name: str, exercise: int | str | None, exc: BaseException) -> str:
    return (f"{BROKEN} This demo stopped because your {_label(name, exercise)} raised "
            f"{type(exc).__name__}: {exc}. Run its check cell for a precise message, fix it, "
            "and run this cell again.")


@contextlib.contextmanager
def needs_your_code(name: str, exercise: int | str | None = None) -> Iterator[None]:
    """Run the block; if the student's code is unsolved or fails, print one line and go on."""
    try:
        yield
    except NotImplementedError:
        print(skipped_message(name, exercise))
    except Exception as exc:  # noqa: BLE001 - any failure of the student's code becomes a line
        print(broken_message(name, exercise, exc))


def your_code_or(build: Callable[[], T], *, fallback: Callable[[], T], name: str,
                 exercise: int | str | None = None, fallback_name: str = "a stand-in") -> T:
    """Return ``build()``; if the student's code is unsolved or fails, say so and use ``fallback()``.

    The fallback keeps the rest of the notebook running. It must not be the
    exercise's answer: use a library's own model or function.
    """
    try:
        return build()
    except NotImplementedError:
        print(f"{skipped_message(name, exercise)} Until then the cells below use {fallback_name}.")
    except Exception as exc:  # noqa: BLE001
        print(f"{broken_message(name, exercise, exc)} Until then the cells below use {fallback_name}.")
    return fallback()

