"""Run All goes on past unsolved exercises: checks and demos say what is missing in one line.

Under nbgrader (``NBGRADER_EXECUTION`` set) an untouched stub still fails its
check, so it still scores 0.
"""
import pytest

from helpers import checks
from helpers.checks.core import CheckFailed, NotAttempted, call_student, student_check
from helpers.demos import BROKEN, SKIPPED, needs_your_code, your_code_or


def stub(*args, **kwargs):
    raise NotImplementedError("Replace this line with your solution.")


@student_check
def check_demo(fn):
    call_student(fn, 1, what="demo")
    raise CheckFailed("demo", "the values are wrong.")


def test_untouched_stub_prints_not_attempted_in_a_students_kernel(monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert check_demo(stub) is None
    out = capsys.readouterr()
    assert out.out.startswith("✗ demo: not attempted yet.")
    assert "NotImplementedError" in out.out            # the hint names the line to replace
    assert out.err == ""


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_untouched_stub_still_fails_under_nbgrader(monkeypatch, mode):
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    with pytest.raises(NotAttempted, match="not attempted yet"):
        check_demo(stub)


def test_wrong_answers_always_raise(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    with pytest.raises(CheckFailed, match="the values are wrong"):
        check_demo(lambda x: x)


def test_every_notebook_facing_check_goes_on_past_an_untouched_stub():
    exported = [name for name in checks.__all__ if name.startswith("check_")]
    assert exported
    unwrapped = [name for name in exported if not hasattr(getattr(checks, name), "__wrapped__")]
    assert not unwrapped, f"decorate these with @student_check: {unwrapped}"


def test_needs_your_code_says_what_is_missing_and_carries_on(capsys):
    ran = []
    with needs_your_code("max_pool_2d", exercise=1):
        stub()
        ran.append("after")                        # never reached
    out = capsys.readouterr().out
    assert ran == []
    assert out.count("\n") == 1 and out.startswith(SKIPPED)
    assert "`max_pool_2d` (exercise 1)" in out
    with needs_your_code("MBConvBlock", exercise="2 and 3"):
        stub()
    assert "(exercises 2 and 3)" in capsys.readouterr().out


def test_needs_your_code_reports_a_broken_answer_in_one_line(capsys):
    with needs_your_code("VGG", exercise=4):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    out = capsys.readouterr().out
    assert out.startswith(BROKEN) and out.count("\n") == 1
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in out


def test_needs_your_code_is_silent_when_the_code_works(capsys):
    with needs_your_code("f"):
        print("result 42")
    assert capsys.readouterr().out == "result 42\n"


def test_needs_your_code_lets_ctrl_c_through():
    with pytest.raises(KeyboardInterrupt):
        with needs_your_code("f"):
            raise KeyboardInterrupt


def test_your_code_or_uses_the_fallback_only_when_needed(capsys):
    assert your_code_or(lambda: "yours", fallback=lambda: "library", name="f") == "yours"
    assert capsys.readouterr().out == ""
    got = your_code_or(stub, fallback=lambda: "library", name="VGG", exercise=4,
                       fallback_name="torchvision's vgg11")
    out = capsys.readouterr().out
    assert got == "library"
    assert out.startswith(SKIPPED) and "torchvision's vgg11" in out and out.count("\n") == 1


def test_checks_refuse_the_course_own_code():
    """Passing a function, class or instance from `helpers` to a check fails with an actionable message."""
    import functools

    from helpers.checks.core import reject_course_code
    from helpers.inspection import count_parameters
    from helpers.training import History

    for course_code in (count_parameters, History, History(), functools.partial(count_parameters)):
        with pytest.raises(CheckFailed) as info:
            reject_course_code(course_code, "max_pool_2d")
        message = str(info.value)
        assert "from the course's module `helpers." in message
        assert "Write `max_pool_2d` yourself" in message
    class Mine:
        pass

    for own in (stub, lambda x: x, Mine, Mine(), len):
        reject_course_code(own, "max_pool_2d")               # the student's code, or a builtin
