"""Opt-in input logging (``[serve] log_inputs``): request rows to a rotating Parquet window.

Files land in ``<home>/serving/inputs/<model>/`` with the raw feature columns only (numeric as
float64, categorical as text), so `gatewise monitor --from-serving` reads every ``*.parquet``
there as current data. Each file is written under a temporary name and renamed, so a reader
never sees half a file; the oldest files beyond the window are deleted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger("gatewise.serve")

ROWS_PER_FILE = 5_000
FLUSH_S = 60.0  # a quiet server still writes what it saw within a minute
MAX_FILES = 20  # the window: at most 100,000 rows


def inputs_dir(home: Path, model: str) -> Path:
    return Path(home) / "serving" / "inputs" / model


class InputLog:
    """``add(rows)`` from the event loop (cheap); a daemon thread writes the files."""

    def __init__(self, folder: Path, *, rows_per_file: int = ROWS_PER_FILE,
                 flush_s: float = FLUSH_S, max_files: int = MAX_FILES) -> None:
        self.folder = Path(folder)
        self.rows_per_file, self.flush_s, self.max_files = rows_per_file, flush_s, max_files
        self._rows: list[dict[str, Any]] = []
        self._first_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._count = 0
        self._thread = threading.Thread(target=self._loop, name="gatewise-input-log", daemon=True)
        self._thread.start()

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            if not self._rows:
                self._first_at = time.monotonic()
            self._rows.extend(rows)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                due = len(self._rows) >= self.rows_per_file or (self._rows and time.monotonic() - self._first_at >= self.flush_s)
            if due:
                self.flush()

    def flush(self) -> Path | None:
        """Write what is buffered as one file (if anything); returns its path."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return None
        try:
            return self._write(rows)
        except Exception as exc:  # noqa: BLE001 - logging inputs must never stop the serving
            logger.warning("input log: could not write %d rows to %s: %s: %s", len(rows), self.folder, type(exc).__name__, exc)
            return None

    def _write(self, rows: list[dict[str, Any]]) -> Path:
        import pandas as pd

        self.folder.mkdir(parents=True, exist_ok=True)
        self._count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.folder / f"inputs-{stamp}-{os.getpid()}-{self._count}.parquet"
        partial = target.with_name(f".{target.name}.partial")
        pd.DataFrame.from_records(rows).to_parquet(partial, index=False)
        os.replace(partial, target)
        self._rotate()
        return target

    def _rotate(self) -> None:
        files = sorted(self.folder.glob("inputs-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[: max(0, len(files) - self.max_files)]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
