"""What a component's signed record says about the code around it: a digest of its whole installed
distribution, and the versions of gatewise, onnx and onnxruntime in use. Each is computed once per
process (cached), from the files on disk and the installed metadata: nothing heavy is imported."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import cache
from importlib import metadata
from pathlib import Path

from gatewise import __version__

# gatewise's own import packages: an editable checkout maps each to a folder of its own
# (pyproject's [tool.setuptools] packages; a test keeps the two equal).
GATEWISE_PACKAGES = ("gatewise", "gatewise.flows", "gatewise.gates", "gatewise.plugins", "gatewise.registry")
# Files an installer writes about the installation rather than the code (which installer, whether
# it was asked for, from where); left out so that the same wheel gives the same digest.
_INSTALL_NOTES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


@cache
def runtime_versions() -> dict[str, str]:
    """The versions of gatewise, onnx and onnxruntime this process uses, from their metadata."""
    return {"gatewise": __version__, "onnx": _installed("onnx"),
            "onnxruntime": _installed("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")}


def _installed(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


@cache
def distribution_sha256(name: str) -> str:
    """A sha256 over every file of the installed distribution ``name``, read from disk now.

    Installed from a wheel (its RECORD lists the files): each file RECORD lists, by its path in
    RECORD, with the sha256 of its bytes on disk (RECORD's own hashes are not trusted), leaving
    out compiled ``.pyc`` files, files installed outside site-packages (console scripts, which the
    installer writes with this machine's interpreter path) and the installer's notes (RECORD,
    INSTALLER, REQUESTED, direct_url.json). Editable, or with no RECORD: every file under the
    folder of each of its top-level import packages (``top_level.txt``, else its entry-point
    modules), and for gatewise itself each of ``GATEWISE_PACKAGES``, ``__pycache__`` left out.
    The digest is sha256 over the sorted lines ``path<TAB>sha256-of-bytes`` ("missing" for a
    listed file that is gone). An unknown distribution gives "".
    """
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        if name != "gatewise":
            return ""
        dist = None  # gatewise run from a source tree that is not installed
    return files_sha256(dist, GATEWISE_PACKAGES if name == "gatewise" else None)


def files_sha256(dist: metadata.Distribution | None, packages: tuple[str, ...] | None = None) -> str:
    """The digest of ``distribution_sha256`` for one distribution; ``packages`` replaces its
    top-level packages when it is editable or has no RECORD (None: from its metadata)."""
    if dist is None or _editable(dist) or not dist.files:
        files = _package_files(packages or (_top_level(dist) if dist is not None else ()))
    else:
        files = _record_files(dist)
    lines = sorted(f"{label}\t{_file_sha256(path)}\n" for label, path in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _editable(dist: metadata.Distribution) -> bool:
    try:
        return bool(json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"))
    except ValueError:
        return False


def _record_files(dist: metadata.Distribution) -> list[tuple[str, Path]]:
    found = []
    for entry in dist.files or ():
        parts = entry.parts
        if parts[0] == ".." or entry.suffix == ".pyc" or "__pycache__" in parts:
            continue
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _INSTALL_NOTES:
            continue
        found.append((entry.as_posix(), Path(entry.locate())))
    return found


def _top_level(dist: metadata.Distribution) -> tuple[str, ...]:
    names = (dist.read_text("top_level.txt") or "").split()
    if not names:
        names = [ep.value.split(":")[0].split(".")[0] for ep in dist.entry_points if ep.group == "gatewise"]
    return tuple(dict.fromkeys(names or [dist.metadata["Name"].replace("-", "_")]))


def _package_files(packages: tuple[str, ...]) -> list[tuple[str, Path]]:
    found = []
    for package in packages:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        prefix = package.replace(".", "/")
        if spec.submodule_search_locations:
            for folder in map(Path, spec.submodule_search_locations):
                for path in sorted(folder.rglob("*")):
                    if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                        found.append((f"{prefix}/{path.relative_to(folder).as_posix()}", path))
        elif spec.origin and Path(spec.origin).is_file():
            found.append((f"{prefix}{Path(spec.origin).suffix}", Path(spec.origin)))
    return found


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"
