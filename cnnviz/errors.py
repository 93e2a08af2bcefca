"""The two kinds of error the tool reports to a user (never with a traceback)."""


class CnnvizError(Exception):
    """Something failed while doing valid work (corrupt file, NaN loss, no GPU): exit code 1."""

    exit_code = 1


class UsageError(CnnvizError):
    """The user asked for something invalid (unknown name, bad value): exit code 2."""

    exit_code = 2
