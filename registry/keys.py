"""Ed25519 private key files: the pipeline's key and approvers' personal keys, owner-only, never printed.

The key id is the sha256 (hex) of the raw 32-byte public key, so a public key found anywhere
proves its own id. Which keys a ledger trusts, and when, is ``gatewise.registry.keyring``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatewise.errors import RegistryError, UsageError

KEY_DIR = "keys"
KEY_FILE = "pipeline.ed25519"
APPROVER_DIR = "approvers"
NEXT_SUFFIX = ".next"  # a successor key written before its rotation entry commits

_APPROVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


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


def approver_key_path(home: Path, name: str) -> Path:
    """``<home>/keys/approvers/<name>.ed25519``, the default place of an approver's personal key."""
    return Path(home) / KEY_DIR / APPROVER_DIR / f"{check_approver_name(name)}.ed25519"


def check_approver_name(name: str) -> str:
    if not isinstance(name, str) or not _APPROVER_NAME.fullmatch(name):
        raise UsageError(
            f"bad approver name {name!r}: use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def next_path(path: Path) -> Path:
    return path.with_name(path.name + NEXT_SUFFIX)


def _raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _signing_key(path: Path, private: Ed25519PrivateKey) -> SigningKey:
    public = _raw_public(private)
    return SigningKey(path=path, public_key=public, keyid=keyid_of(public), private=private)


def load_or_create_key(home: Path) -> SigningKey:
    """Read ``<home>/keys/pipeline.ed25519`` (PKCS#8 PEM), creating it (0600, dir 0700) if absent."""
    path = key_path(home)
    if path.exists():
        return read_key(path, "signing key")
    private_dir(path.parent, ours=True)
    try:
        return write_new_key(path)
    except FileExistsError:  # another process won the race: use its key
        return read_key(path, "signing key")


def read_key(path: Path, what: str = "key") -> SigningKey:
    """Load an Ed25519 PEM private key that only its owner can read; errors name the file, never its bytes."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise RegistryError(f"{what} {path} does not exist") from None
    if mode & 0o077:
        raise RegistryError(f"{what} {path} is readable by others (mode {mode:o}): run `chmod 600 {path}`")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise RegistryError(f"{what} {path} is not a readable Ed25519 PEM key ({type(exc).__name__})") from None
    except OSError as exc:
        raise RegistryError(f"{what} {path} cannot be read ({exc.strerror})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise RegistryError(f"{what} {path} is not an Ed25519 key")
    return _signing_key(path, private)


def private_dir(directory: Path, *, ours: bool) -> None:
    """Make sure ``directory`` exists and only its owner can enter it.

    Directories gatewise owns (``<home>/keys``, ``<home>/keys/approvers``) are created 0700 and
    tightened if needed; a directory the user named (``--key-file``) is created 0700 when missing,
    but an existing one that others can enter is refused rather than changed behind their back.
    """
    missing = not directory.exists()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if missing or ours:
        os.chmod(directory, 0o700)  # mkdir's mode is reduced by the umask
        return
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        raise RegistryError(
            f"directory {directory} is open to others (mode {mode:o}): keep private keys in a directory of mode 700"
        )


def write_new_key(path: Path) -> SigningKey:
    """Generate a key and write it to ``path`` (0600), which must not exist (FileExistsError)."""
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
    finally:
        tmp.unlink()
    return _signing_key(path, private)


def approver_key_file(home: Path, name: str, key_file: Path | None) -> tuple[Path, bool]:
    """Where an approver's key lives: ``--key-file`` or the default; and whether gatewise owns the directory."""
    if key_file is not None:
        check_approver_name(name)
        return Path(key_file).expanduser().absolute(), False
    return approver_key_path(home, name), True


def create_approver_key(home: Path, name: str, key_file: Path | None) -> tuple[SigningKey, bool]:
    """An approver's key: read from the file if it is there, else created (0600 in a 0700 directory).

    Returns the key and whether it was created now (so a caller that fails can remove it).
    """
    path, ours = approver_key_file(home, name, key_file)
    if path.exists():
        return read_key(path, f"approver key of {name}"), False
    prepare_key_dir(path, ours)
    return write_new_key(path), True


def write_successor(path: Path) -> SigningKey:
    """Write a rotation's new key next to ``path`` (``<path>.next``), replacing a stale one."""
    successor = next_path(path)
    successor.unlink(missing_ok=True)
    return write_new_key(successor)


def install_successor(path: Path, new: SigningKey) -> SigningKey:
    """After the rotation entry committed: the new key takes the old file's place (atomically)."""
    os.replace(new.path, path)
    return SigningKey(path=path, public_key=new.public_key, keyid=new.keyid, private=new.private)


def prepare_key_dir(path: Path, ours: bool) -> None:
    """The private directory a key file goes in (see ``private_dir``)."""
    if ours:
        private_dir(path.parent.parent, ours=True)
    private_dir(path.parent, ours=ours)
