"""Errors a user can cause, and the exit codes of the `gatewise` command.

The CLI turns each error into one clear line and its exit code. ``ExitCode`` is the one list of
exit codes: the CLI returns its members, the help text and docs/cli.md are made from it.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `gatewise` exits with. Scripts may rely on these numbers; they never change meaning."""

    OK = 0
    ERROR = 1
    USAGE = 2
    BLOCKED = 3
    VERIFY_FAILED = 4
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        """One line on when this code is returned (for --help and the docs)."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "internal error (a bug or an environment failure; GATEWISE_DEBUG=1 shows the traceback)",
    ExitCode.USAGE: "bad input: an unknown option or key, a bad value, a missing file or registry",
    ExitCode.BLOCKED: "gates blocked the promotion (a run, or a promote with an unwaived failure)",
    ExitCode.VERIFY_FAILED: "verification found a problem (registry verify, audit verify, deploy verify)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class GatewiseError(Exception):
    """Base class of every error gatewise reports to a user without a traceback."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(GatewiseError):
    """Bad input or usage: a wrong column, a bad config key, an unreadable file (exit 2)."""

    exit_code = ExitCode.USAGE


class RegistryError(GatewiseError):
    """The registry cannot be opened or would be damaged by the operation (exit 2)."""

    exit_code = ExitCode.USAGE
