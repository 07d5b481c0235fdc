"""The one error type the library raises for bad input or a failed step: a message a person can act on.

The CLI prints it as `error: <what>` plus `fix: <hint>` and exits non-zero without a traceback; the TUI shows it
in a notification. Anything else escaping is a bug and keeps its traceback.
"""


class AirlockError(Exception):
    """A problem the user can fix. `where` names the file/record/field, `fix` says what to do, `code` is a stable
    dotted name for the kind of problem (`hub.gated`, `plan.no_space`): scripts and tests match the code, never
    the wording, so messages can be improved freely."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None, code: str = ""):
        self.message = message
        self.where = where
        self.fix = fix
        self.code = code
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        if self.code:
            text += f"\n  code: {self.code}"
        return text


class OfflineViolation(AirlockError):
    """Something on the offline side tried to open a network connection."""

    exit_code = 3


def from_os_error(exc: OSError) -> AirlockError:
    """An OSError that reached the CLI, as a message with the file and a fix (no traceback for an operator)."""
    import errno

    fixes = {
        errno.ENOSPC: "free some space on that filesystem, or write the output elsewhere",
        errno.EROFS: "that filesystem is mounted read-only: choose a writable location",
        errno.EACCES: "choose a location you can write, or ask for access to it",
        errno.EPERM: "choose a location you can write, or ask for access to it",
        errno.ENOENT: "check the path",
        errno.EDQUOT: "your disk quota is used up: free some space or ask for more",
    }
    where = exc.filename if exc.filename is not None else None
    message = exc.strerror or str(exc)
    if exc.filename2:
        message += f" (and {exc.filename2})"
    return AirlockError(message, where=str(where) if where else None,
                        fix=fixes.get(exc.errno, "check the file and the filesystem it is on"))
