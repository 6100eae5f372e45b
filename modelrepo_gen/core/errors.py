"""Errors a user can cause. They end a command with one clear line, never a traceback."""


class UserError(Exception):
    """Something the user can fix: a bad override, a missing checkpoint, a bad request."""

    exit_code = 2  # the command's exit status


def first_line(error: BaseException) -> str:
    """The first line of what a library's exception says (its type where it says nothing), for
    the one line a UserError gives."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
