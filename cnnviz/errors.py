"""The two kinds of error the tool reports to a user (never with a traceback)."""

from __future__ import annotations


class CnnvizError(Exception):
    """Something failed while doing valid work (corrupt file, NaN loss, no GPU): exit code 1.

    `param`, when given, names the library parameter the message starts with; the command
    line shows it as its flag."""

    exit_code = 1

    def __init__(self, message: str = "", param: str | None = None):
        super().__init__(message)
        self.param = param

    def as_flag(self, flag: str | None = None) -> str:
        """The message with the parameter written as the command line's flag where it is
        the subject (`top 301 is larger…; choose top ≤ 300`); `top=301` is left to the CLI."""
        import re

        text = str(self)
        if not self.param:
            return text
        flag = flag or "--" + self.param.replace("_", "-")
        text = re.sub(rf"^{re.escape(self.param)}(?![\w=])", flag, text)
        return re.sub(rf"(?<=choose ){re.escape(self.param)}(?= [≤≥<>])", flag, text)


class UsageError(CnnvizError):
    """The user asked for something invalid (unknown name, bad value): exit code 2.

    `param` names the library parameter the message is about (`steps must be ≥ 1, got 0`);
    the command line shows it as its flag (`--steps must be ≥ 1, got 0`)."""

    exit_code = 2


class CheckFailed(CnnvizError):
    """A check of what the network computes found a difference (exit 1); `entries`: the
    files written as its evidence, recorded before the error is raised."""

    def __init__(self, message: str, entries: list[dict] | None = None):
        super().__init__(message)
        self.entries = entries or []


class CnnvizWarning(UserWarning):
    """Something the user should know about a result (the command line prints it as
    `warning: …`; a notebook shows it as Python shows warnings)."""


def warn_if_not_finite(values, what: str) -> bool:
    """Warn (CnnvizWarning) when `values` hold NaN or ±inf; returns whether they did."""
    import warnings

    import numpy as np

    bad = ~np.isfinite(np.asarray(values, np.float64))
    if bad.any():
        warnings.warn(CnnvizWarning(f"the model produces NaN or infinite values ({what}: "
                                    f"{int(bad.sum()):,} of {bad.size:,}); its weights or "
                                    "input are not finite, so these results mean nothing"),
                      stacklevel=2)
    return bool(bad.any())
