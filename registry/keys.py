"""The pipeline's Ed25519 signing key: created once, readable only by its owner, never printed.

The key id is the sha256 (hex) of the raw 32-byte public key, so a public key found anywhere
proves its own id.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatewise.errors import RegistryError

KEY_DIR = "keys"
KEY_FILE = "pipeline.ed25519"


def keyid_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    """A private key with its public half. ``repr`` never shows the private key."""

    path: Path
    public_key: bytes
    keyid: str
    private: Ed25519PrivateKey = field(repr=False, compare=False)


def key_path(home: Path) -> Path:
    return Path(home) / KEY_DIR / KEY_FILE


def _raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_or_create_key(home: Path) -> SigningKey:
    """Read ``<home>/keys/pipeline.ed25519`` (PKCS#8 PEM), creating it (0600, dir 0700) if absent."""
    path = key_path(home)
    if not path.exists():
        return _create_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise RegistryError(f"signing key {path} is readable by others (mode {mode:o}): run `chmod 600 {path}`")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise RegistryError(f"signing key {path} is not a readable Ed25519 PEM key ({type(exc).__name__})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise RegistryError(f"signing key {path} is not an Ed25519 key")
    public = _raw_public(private)
    return SigningKey(path=path, public_key=public, keyid=keyid_of(public), private=private)


def _create_key(path: Path) -> SigningKey:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # mkdir's mode is reduced by the umask and ignored if it existed
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Write a private temporary file, then link it into place: the link fails if another
    # process won the race, and nobody ever reads a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return load_or_create_key(path.parent.parent)
    finally:
        tmp.unlink()
    public = _raw_public(private)
    return SigningKey(path=path, public_key=public, keyid=keyid_of(public), private=private)
