"""Errors a user can cause. The CLI turns each into one clear line and an exit code."""


class GatewiseError(Exception):
    """Base class of every error gatewise reports to a user without a traceback."""

    exit_code = 1


class UsageError(GatewiseError):
    """Bad input or usage: a wrong column, a bad config key, an unreadable file (exit 2)."""

    exit_code = 2


class RegistryError(GatewiseError):
    """The registry cannot be opened or would be damaged by the operation (exit 2)."""

    exit_code = 2
