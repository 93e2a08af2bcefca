"""The two kinds of error the tool reports to a user (never with a traceback)."""

from __future__ import annotations


class CnnvizError(Exception):
    """Something failed while doing valid work (corrupt file, NaN loss, no GPU): exit code 1."""

    exit_code = 1


class UsageError(CnnvizError):
    """The user asked for something invalid (unknown name, bad value): exit code 2.

    `param` names the library parameter the message is about (`steps must be ≥ 1, got 0`);
    the command line shows it as its flag (`--steps must be ≥ 1, got 0`)."""

    exit_code = 2

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param

    def as_flag(self) -> str:
        """The message with the parameter written as the command line's flag."""
        text = str(self)
        if self.param and text.startswith(self.param):
            return "--" + self.param.replace("_", "-") + text[len(self.param):]
        return text
