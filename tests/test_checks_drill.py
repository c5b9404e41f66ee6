"""The numeric drill of notebook 07: the reference passes, wrong numbers fail with the working shown."""
import pytest

from autograder.solutions import load_solutions
from helpers import checks
from helpers.checks.drill import (check_drill_bottleneck_parameters, check_drill_grouped_macs, check_drill_output_size,
                                  check_drill_receptive_field)
from check_messages import message_of

pytestmark = pytest.mark.usefixtures("grading_mode")
DRILL = {"drill_bottleneck_parameters": check_drill_bottleneck_parameters,
         "drill_output_size": check_drill_output_size,
         "drill_receptive_field": check_drill_receptive_field,
         "drill_grouped_macs": check_drill_grouped_macs}


def test_reference_passes(capsys):
    answers = load_solutions("07_exercises", list(DRILL))
    for name, check in DRILL.items():
        check(answers[name])
    out = capsys.readouterr()
    assert out.out.count("✓") == 4 and out.err == ""
    assert name in checks.__all__ or f"check_{name}" in checks.__all__


def test_untouched_stub():
    def stub():
        raise NotImplementedError
    for check in DRILL.values():
        assert "not attempted yet" in message_of(check, stub)


@pytest.mark.parametrize("check,wrong,working", [
    (check_drill_bottleneck_parameters, 69_632, "bn3: 2 x 256 = 512"),             # BatchNorm forgotten
    (check_drill_output_size, 7, "(12 + 2 x 0 - 2) // 2 + 1 = 6"),                  # the last pool missed
    (check_drill_receptive_field, 6, "second 3x3: 6 + (3 - 1) x 2 = 10"),           # the stride ignored
    (check_drill_grouped_macs, 462_422_016, "128 / 32 = 4 input channels"),        # groups ignored
])
def test_wrong_numbers_show_the_working(check, wrong, working):
    message = message_of(check, lambda: wrong)
    assert "is not right" in message and "The working:" in message and working in message


def test_not_a_whole_number():
    assert "not a whole number" in message_of(check_drill_output_size, lambda: "6")
    assert "not a whole number" in message_of(check_drill_output_size, lambda: 6.5)
    check_drill_output_size(lambda: 6.0)                                           # a whole float is fine
