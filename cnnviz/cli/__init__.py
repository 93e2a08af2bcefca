"""The `cnnviz` command line: parse, call the library, print a summary.

One module per group of commands (train_commands, probe_commands, explain_commands,
check_commands, gallery_commands, serve_commands), the
group and entry point in group.py, shared options and helpers in options.py. TensorFlow is
imported inside the commands that compute, never at import, so `cnnviz --help` and
`cnnviz list` stay instant.
"""

from cnnviz.cli import (check_commands, explain_commands, gallery_commands,  # noqa: F401
                        probe_commands, serve_commands, train_commands)  # (registers the commands)
from cnnviz.cli.group import cli, main
from cnnviz.cli.options import parse_int_list

__all__ = ["cli", "main", "parse_int_list"]
