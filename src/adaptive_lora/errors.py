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


class Preempted(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM, how clusters preempt) and wrote a checkpoint at
    optimizer step ``step`` first: running the same command again resumes from there.

    A ``KeyboardInterrupt``, not an ``Exception``: like Ctrl-C it stops a sweep instead of being
    recorded as that run's failure. The CLI exits with :attr:`exit_code`."""

    exit_code = 5

    def __init__(self, step: int, where):
        super().__init__(f"preempted at step {step}: checkpoint written in {where}; run the same command again "
                         "to resume")
        self.step, self.where = step, where
