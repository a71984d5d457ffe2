"""Built-in deployers: `local` (this registry's `gatewise serve`) and `bundle` (a verifiable folder).

Both receive a ``Release`` that gatewise has checked, and both check the bytes they hand on
against the sha256 the signed entries name: what is gated is what ships.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from gatewise import deploy_bundle as layout
from gatewise.errors import GatewiseError, UsageError
from gatewise.hookspecs import Deployed, Deployer, Release, hookimpl
from gatewise.plugins.params import ComponentParams, parse_params
from gatewise.types import sha256_file


class LocalParams(ComponentParams):
    """`local` takes no parameters."""


class BundleParams(ComponentParams):
    dir: Path = Field(description="Folder that receives one bundle per version, as <dir>/<model>-v<N>; "
                      "a relative path is taken from the working directory of the run.")


class Local:
    """Makes the version live for every `gatewise serve` on this registry.

    The promotion already moved the production alias that the servers follow; this deployer
    checks that the stored bytes are the signed ones, so that a server will accept them, and the
    signed deployment entry records that the version went out.
    """

    name = "local"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(LocalParams, params, f"deployer '{self.name}'")

    def deploy(self, release: Release, params: dict[str, Any]) -> Deployed:
        self.check_params(params)
        actual = _sha256_of(release.artifact)
        if actual != release.sha256:
            raise GatewiseError(
                f"stored artifact of {release.version} has sha256 {actual[:16]}..., but its signed candidate entry names "
                f"{release.sha256[:16]}...: `gatewise serve` will refuse it; run `gatewise registry verify`"
            )
        return Deployed(target="local", detail={"sha256": actual, "served_by": "gatewise serve"})


class Bundle:
    """Writes a self-contained folder that `gatewise deploy verify DIR` checks with no database."""

    name = "bundle"

    def check_params(self, params: dict[str, Any]) -> None:
        if "dir" not in (params or {}):
            raise UsageError(f"deployer '{self.name}' needs a folder: set dir = \"PATH\" in [deploy.params.{self.name}] (or pass --dir)")
        parse_params(BundleParams, params, f"deployer '{self.name}'")

    def deploy(self, release: Release, params: dict[str, Any]) -> Deployed:
        self.check_params(params)
        settings = parse_params(BundleParams, params, f"deployer '{self.name}'")
        parent = settings.dir.expanduser().absolute()
        parent.mkdir(parents=True, exist_ok=True)
        target = parent / layout.folder_name(release.version)
        _check_replaceable(target)
        # Written beside the target and renamed into place: a device never sees half a bundle.
        partial = parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        partial.mkdir()
        try:
            files = write_bundle(release, partial)
            _swap_in(partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return Deployed(target=str(target), detail={"files": len(files), "entries": len(release.entries), "format": layout.FORMAT})


def write_bundle(release: Release, folder: Path) -> dict[str, dict[str, Any]]:
    """Write the bundle's files into ``folder`` (empty); returns the manifest's file table."""
    shutil.copyfile(release.artifact, folder / layout.MODEL)
    copied = _sha256_of(folder / layout.MODEL)
    if copied != release.sha256:
        raise GatewiseError(
            f"the bytes copied from the artifact of {release.version} have sha256 {copied[:16]}..., "
            f"not the signed {release.sha256[:16]}...; run `gatewise registry verify`"
        )
    _write_json(folder / layout.CONTRACT, release.input_contract)
    (folder / layout.ENTRIES).mkdir()
    for entry in release.entries:
        # The envelope exactly as stored: its signature covers the payload, not a re-encoding.
        (folder / layout.entry_file(entry.seq, entry.predicate_type)).write_text(entry.envelope, encoding="utf-8")
    _write_json(folder / layout.KEYS, {"format": layout.FORMAT, "keys": [
        {"keyid": keyid, "algorithm": "ed25519", "public_key": public} for keyid, public in sorted(release.public_keys.items())
    ]})
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = {name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size} for name in names}
    _write_json(folder / layout.MANIFEST, {
        "format": layout.FORMAT,
        "model": release.model,
        "version": release.version,
        "sha256": release.sha256,
        "size_bytes": release.size_bytes,
        "files": files,
    })
    return files


def _check_replaceable(target: Path) -> None:
    """A bundle of the same version is replaced (a re-deploy); anything else there is left alone."""
    if not target.exists():
        return
    manifest = target / layout.MANIFEST
    try:
        ours = json.loads(manifest.read_text(encoding="utf-8")).get("format") == layout.FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not target.is_dir() or not ours:
        raise GatewiseError(f"{target} exists and is not a deploy bundle: move it away or choose another dir")


def _swap_in(partial: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
        os.rename(target, old)
    os.rename(partial, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _sha256_of(path: Path) -> str:
    try:
        return sha256_file(Path(path))
    except OSError as exc:
        raise GatewiseError(f"cannot read the stored artifact {path}: {exc.strerror or exc}") from None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@hookimpl
def gatewise_deployers() -> list[Deployer]:
    return [Local(), Bundle()]
