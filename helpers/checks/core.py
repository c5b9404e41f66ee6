"""The machinery every instant-feedback check is built from.

A check calls the student's code, inspects what came back in the trusted
direction (type first, then values via ``numpy.testing`` / ``torch.testing``)
and either prints one short line or raises :class:`CheckFailed`.

``CheckFailed`` renders in Jupyter as a short message (expected, got, hint)
instead of a long traceback, and none of this module writes to stderr:
nbgrader scores a test cell that writes to stderr as 0.
"""
from __future__ import annotations

import functools
import os
import sys
import zlib
from typing import Any, Callable

import numpy as np
import torch

NOT_ATTEMPTED_HINT = (
    "Replace the `raise NotImplementedError(...)` line in that cell with your "
    "code, run the cell, then run this check again."
)


class CheckFailed(AssertionError):
    """A check found a problem with the student's answer.

    ``what`` names the exercise, and the message says what was expected,
    what came back and what to try.
    """

    def __init__(self, what: str, problem: str, *, expected: Any = None,
                 got: Any = None, hint: str | None = None):
        self.what = what
        self.problem = problem
        self.expected = expected
        self.got = got
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        lines = [f"✗ {self.what}: {self.problem}"]
        if self.expected is not None:
            lines.append(f"    expected: {self.expected}")
        if self.got is not None:
            lines.append(f"    got:      {self.got}")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)

    def add_hint(self, text: str) -> None:
        """Append ``text`` to the hint (once), e.g. the architecture summary of the check that caught it."""
        if self.hint and text in self.hint:
            return
        self.hint = f"{self.hint} {text}" if self.hint else text
        self.args = (self.message,)      # str(failure) shows the longer hint

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: the student sees
        # the message alone, and a hidden test's source is never echoed.
        return [f"CheckFailed: {self.message}"]


class NotAttempted(CheckFailed):
    """The student's stub still raises ``NotImplementedError``."""

    def __init__(self, what: str, hint: str = None):
        super().__init__(what, "not attempted yet.", hint=hint or NOT_ATTEMPTED_HINT)


def grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate).

    nbgrader sets ``NBGRADER_EXECUTION`` in the kernel's environment.
    """
    return os.environ.get("NBGRADER_EXECUTION") is not None


def grading_rng(exercise: str) -> np.random.Generator:
    """Random numbers for an exercise's hidden cases.

    While grading, the seed comes from ``COURSE_GRADING_SEED``, which the
    grader creates with its work dir and keeps beside the gradebook: reading
    the hidden tests in the public repository tells nothing about the cases
    beyond the exercise's specification. Elsewhere (tests, a student's kernel)
    the seed is fixed, so runs repeat.
    """
    seed = int(os.environ.get("COURSE_GRADING_SEED") or 0)
    return np.random.default_rng([seed, zlib.crc32(exercise.encode())])


def student_check(check: Callable) -> Callable:
    """Decorate a notebook-facing ``check_*`` function so that Run All goes on.

    In a student's own kernel an untouched stub prints its "not attempted yet"
    line and the check returns ``None``: JupyterLab's Run All does not stop at
    the first unsolved exercise. Under nbgrader (see :func:`grading`) the
    failure is raised as before, so an untouched stub still scores 0. Wrong
    answers always raise.
    """
    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except NotAttempted as failure:
            if grading():
                raise
            print(failure.message)
            return None
    return wrapper


def passed(what: str, detail: str = "") -> None:
    """Print the one short line a passing check shows."""
    print(f"✓ {what}: passed{' (' + detail + ')' if detail else ''}.")


def call_student(fn: Callable, *args: Any, what: str, **kwargs: Any) -> Any:
    """Call the student's ``fn`` and turn its failures into ``CheckFailed``.

    ``NotImplementedError`` means the stub is untouched: "not attempted yet".
    Any other exception is reported with its type and message, so the student
    sees which call broke.
    """
    if not callable(fn):
        raise CheckFailed(what, f"expected something callable, got {type(fn).__name__}.",
                          hint="Pass the function or class itself, without calling it.")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted(what) from None
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any student error becomes feedback
        call = describe_call(args, kwargs)
        raise CheckFailed(what, f"calling it with {call} raised {type(exc).__name__}: {exc}",
                          hint="Run your function on that input in a cell of its own to see "
                               "the full traceback.") from exc


COURSE_PACKAGE = "helpers"


def reject_course_code(fn: Any, what: str) -> None:
    """Fail when ``fn`` (a function, class or instance) was defined in the course's ``helpers`` package.

    A check grades the student's code; handing it one of the course's own
    functions, or one of the checks' oracles, proves nothing.
    """
    target = getattr(fn, "func", fn)                       # look through functools.partial
    module = getattr(target, "__module__", None) or ""
    if module == COURSE_PACKAGE or module.startswith(COURSE_PACKAGE + "."):
        name = getattr(target, "__qualname__", None) or type(target).__qualname__
        raise CheckFailed(what, f"this is `{name}` from the course's module `{module}`, "
                                "not your own code.",
                          hint=f"Write `{what}` yourself in the exercise cell, run that cell, "
                               "and pass your own function to the check.")


def expect_value_error(call: Callable[[], Any], what: str, situation: str, *, hint_raised: str,
                       hint_returned: str, returned: str = "returned a result",
                       expected: str = "ValueError") -> None:
    """``call()`` runs the student's code on an input that has no answer: it must raise ValueError.

    ``situation`` says why, e.g. "a 5x5 window on a 4x4 input leaves no output".
    """
    try:
        result = call()
    except NotImplementedError:
        raise NotAttempted(what) from None
    except ValueError:
        return
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any other error becomes feedback
        raise CheckFailed(what, f"{situation}, and your function raised {type(exc).__name__}: {exc}",
                          expected="ValueError", got=type(exc).__name__, hint=hint_raised) from None
    raise CheckFailed(what, f"{situation}, but your function {returned}.",
                      expected=expected, got=describe_value(result), hint=hint_returned)


def describe_call(args: tuple, kwargs: dict) -> str:
    """A short description of call arguments: arrays by shape and dtype."""
    parts = [describe_value(a) for a in args]
    parts += [f"{k}={describe_value(v)}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"


def describe_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape}, dtype {value.dtype}"
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return repr(value)


def require_ndarray(value: Any, what: str) -> np.ndarray:
    """Return ``value`` as a plain ndarray, or fail when it is not an ndarray.

    A subclass is viewed as a plain ndarray so that none of its own methods
    take part in the comparison.
    """
    if not isinstance(value, np.ndarray):
        hint = "Build the result with NumPy (np.zeros, np.max, ...) and return the array."
        if isinstance(value, torch.Tensor):
            hint = "This exercise works in NumPy: return a numpy.ndarray, not a torch.Tensor."
        raise CheckFailed(what, "the result is not a numpy.ndarray.",
                          expected="numpy.ndarray", got=type(value).__name__, hint=hint)
    return value.view(np.ndarray)


def require_tensor(value: Any, what: str) -> torch.Tensor:
    """Return ``value`` as a plain tensor, or fail when it is not a tensor."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(what, "the result is not a torch.Tensor.",
                          expected="torch.Tensor", got=type(value).__name__,
                          hint="Use torch operations on the input tensor and return a tensor.")
    return value.as_subclass(torch.Tensor)


def _shape_hint(kind: str) -> str:
    if kind == "pool":
        return ("Check the output-size formula: out = (size - kernel_size) // stride + 1 "
                "for each spatial axis, and keep the channel axis when the input has one.")
    return "Compare the shape you return with the shape the exercise asks for."


def assert_shape(actual: tuple, expected: tuple, what: str, *, hint: str | None = None) -> None:
    if tuple(actual) != tuple(expected):
        raise CheckFailed(what, "the output has the wrong shape.",
                          expected=tuple(expected), got=tuple(actual),
                          hint=hint or _shape_hint(""))


def assert_dtype(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise CheckFailed(what, "the output has the wrong dtype.",
                          expected=str(expected), got=str(actual),
                          hint=f"Return an array of dtype {expected}, the same as the input; "
                               "for example, allocate the output with dtype=x.dtype.")


def assert_values_close(actual: np.ndarray | torch.Tensor, expected: np.ndarray | torch.Tensor,
                        what: str, *, rtol: float = 1e-5, atol: float = 1e-6,
                        context: str = "", hint: str | None = None) -> None:
    """Compare values with numpy.testing / torch.testing, expected as the trusted side."""
    try:
        if isinstance(expected, torch.Tensor):
            torch.testing.assert_close(require_tensor(actual, what), expected,
                                       rtol=rtol, atol=atol, check_device=False)
        else:
            np.testing.assert_allclose(require_ndarray(actual, what), expected,
                                       rtol=rtol, atol=atol)
    except AssertionError as exc:
        if isinstance(exc, CheckFailed):
            raise
        detail = _first_mismatch(actual, expected)
        raise CheckFailed(what, f"the values are wrong{' for ' + context if context else ''}.",
                          expected=detail[0], got=detail[1],
                          hint=hint or "Work through a small example by hand and compare.") from None


def _first_mismatch(actual: Any, expected: Any) -> tuple[str, str]:
    """Describe the first element that differs, as (expected, got) strings."""
    a = np.asarray(actual.detach().cpu() if isinstance(actual, torch.Tensor) else actual,
                   dtype=np.float64)
    e = np.asarray(expected.detach().cpu() if isinstance(expected, torch.Tensor) else expected,
                   dtype=np.float64)
    bad = np.argwhere(~np.isclose(a, e, rtol=1e-5, atol=1e-6, equal_nan=True))
    if bad.size == 0:
        return "values close to the reference", "values that differ slightly"
    idx = tuple(int(i) for i in bad[0])
    return (f"{e[idx]:.6g} at index {idx} ({len(bad)} of {e.size} values differ)",
            f"{a[idx]:.6g}")


def count_python_lines(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn`` and count the Python lines it executes outside installed libraries.

    The count tells a loop over output positions (thousands of lines) from
    vectorised code (a handful), whatever NumPy calls the student used.
    """
    library_roots = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename.startswith(library_roots):
            return None  # do not trace inside NumPy, torch or the stdlib
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return result, count
