"""Exceptions that mean "stop and tell the user", each with its exit status.

The command line catches :class:`UserError` and prints its message as one line,
``error: <message>``, then exits with ``exit_code`` and no traceback.
Everything else is a bug in nnkd and keeps its traceback.

Messages name settings by their field in backticks (```student.lr```,
```validation```), never by a command-line flag: the engine does not know the
command line.  The command line replaces each such name with the flag that
sets it (``--lr``), see :func:`nnkd.cli.parser.flag_of`.
"""


class UserError(Exception):
    """Something the user can fix: the message says what is wrong and what to do."""

    exit_code = 2


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class Interrupted(UserError):
    """SIGINT or SIGTERM during training; the last checkpoint is kept."""

    exit_code = 130
