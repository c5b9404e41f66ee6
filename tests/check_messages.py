"""What the check tests share: the message a check fails with, and what it must say."""
import pytest

from helpers.checks.core import CheckFailed


def message_of(check, *args, **kwargs) -> str:
    """The text of the CheckFailed that ``check(*args, **kwargs)`` must raise."""
    with pytest.raises(CheckFailed) as info:
        check(*args, **kwargs)
    return str(info.value)


def assert_words(message: str, words) -> None:
    """The message names each of ``words`` and tells the student what to do (a hint), unless
    it is the one-line "not attempted yet"."""
    for word in words:
        assert word in message, message
    assert "hint:" in message or "not attempted yet" in message, message
