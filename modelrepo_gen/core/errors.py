"""Errors a user can cause. They end a command with one clear line, never a traceback."""


class UserError(Exception):
    """Something the user can fix: a bad override, a missing checkpoint, a bad request."""

    exit_code = 2  # the command's exit status
