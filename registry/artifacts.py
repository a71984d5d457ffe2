"""The content-addressed artifact store: ``<home>/artifacts/<sha256>.onnx``, written once, read-only."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from gatewise.errors import RegistryError
from gatewise.registry.projection import artifact_relpath
from gatewise.types import sha256_file


def artifact_file(home: Path, sha256: str) -> Path:
    return Path(home) / artifact_relpath(sha256)


def store_artifact(home: Path, source: Path, expected_sha256: str) -> tuple[str, int]:
    """Copy ``source`` into the store, refusing bytes whose sha256 is not ``expected_sha256``.

    The copy is hashed as it is written, so what is stored is exactly what was checked.
    Returns (sha256, size in bytes).
    """
    target = artifact_file(home, expected_sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as src, open(tmp, "xb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
                size += len(block)
            dst.flush()
            os.fsync(dst.fileno())
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        raise RegistryError(f"candidate artifact not found: {source}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if actual != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise RegistryError(
            f"artifact {source} has sha256 {actual}, not the {expected_sha256} the candidate claims; not registered"
        )
    os.chmod(tmp, 0o444)
    if target.exists() and sha256_file(target) == actual:
        tmp.unlink()  # the same bytes are already stored
    else:
        if target.exists():
            os.chmod(target, 0o644)  # a damaged copy: replace it with the checked bytes
        os.replace(tmp, target)
    return actual, size
