"""Errors meant for users.

A :class:`UserError` carries one line that says what to change. The CLI prints it without a
traceback and exits with code 2. Anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a config value, a path, a model the tool cannot map."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep it to one line: users read it in a terminal, scripts grep it.
        super().__init__(" ".join(str(message).split()))
