"""The registry side of a run's pre-flight check, before Prefect starts: the signing key belongs to the
registry, and the artifact store and the gatewise home are writable. (The database driver and the
database itself are checked by gatewise.registry.database.probe, the data and plugins by
steps.preflight.) Each failure is one line, exit 2, and creates nothing: no key, no file, no folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from gatewise.errors import RegistryError, UsageError


def check_registry_side(home: Path, url: str | None) -> None:
    check_signing_key(home, url)
    check_writable(home, "the gatewise home", UsageError)
    from gatewise.registry.artifacts import artifact_file

    check_writable(artifact_file(home, "0" * 64).parent, "the artifact store", RegistryError)


def check_signing_key(home: Path, url: str | None) -> None:
    """A registry with entries must be signed on with one of its own active pipeline keys: a run
    with another key file would fail after Prefect started, and a missing key file would be
    replaced by a new key that the registry refuses. A registry not created yet passes."""
    from gatewise.registry.database import display_url, existing_engine, resolve_url
    from gatewise.registry.keyring import ensure_key
    from gatewise.registry.keys import key_path, read_key
    from gatewise.registry.signed import SignedLedger

    with existing_engine(home, url) as engine:
        if engine is None:
            return
        with engine.connect() as conn:
            keys = list(SignedLedger(conn).keyring.keys)
            if not keys:
                return
            path = key_path(home)
            if not path.exists():
                raise RegistryError(
                    f"no signing key at {path}, but the registry at {display_url(resolve_url(home, url))} already has "
                    f"entries (its keys: {', '.join(k[:16] for k in keys)}): restore the key file it was created with"
                )
            ensure_key(conn, read_key(path, "signing key"))


def check_writable(directory: Path, what: str, error: type[Exception]) -> None:
    """``directory``, or the nearest folder above it that exists, takes a new file (made and removed)."""
    directory = Path(directory)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{what} {directory} cannot be created: {existing} is not a folder")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise error(f"{what} {directory} is not writable: {existing}: {exc.strerror}") from None
