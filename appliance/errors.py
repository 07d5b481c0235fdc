"""The one error type the library raises for bad input or a failed step: a message a person can act on.

The CLI prints it as `error: <what>` plus `fix: <hint>` and exits non-zero without a traceback; the TUI shows it
in a notification. Anything else escaping is a bug and keeps its traceback.
"""


class AirlockError(Exception):
    """A problem the user can fix. `where` names the file/record/field, `fix` says what to do."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.message = message
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class OfflineViolation(AirlockError):
    """Something on the offline side tried to open a network connection."""

    exit_code = 3
