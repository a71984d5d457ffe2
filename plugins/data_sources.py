"""Built-in data sources: ``arrests`` (bundled Toronto arrests data) and ``file`` (--data CSV/parquet)."""

from __future__ import annotations

from pathlib import Path

from gatewise.data import read_table
from gatewise.errors import GatewiseError, UsageError
from gatewise.hookspecs import DataSource, SourceTable, hookimpl

ARRESTS_NUMERIC = ("year", "age", "checks")
ARRESTS_CATEGORICAL = ("colour", "sex", "employed", "citizen")


class ArrestsSource:
    """Toronto arrests for marijuana possession (scikit-lego), 5,226 rows, no download needed.

    Label ``released`` (positive ``Yes``, 83% of rows), sensitive columns ``colour`` and ``sex``.
    """

    name = "arrests"

    def load(self, path: Path | None) -> SourceTable:
        if path is not None:
            raise UsageError("the 'arrests' source uses its bundled data: drop --data, or use the 'file' source")
        from sklego.datasets import load_arrests

        frame = load_arrests(as_frame=True).reset_index(drop=True)
        expected = ("released", *ARRESTS_NUMERIC, *ARRESTS_CATEGORICAL)
        missing = [c for c in expected if c not in frame.columns]
        if missing:
            raise GatewiseError(
                f"scikit-lego's arrests data lacks column(s) {', '.join(missing)}: unsupported scikit-lego version"
            )
        # Pin the dtypes that build_dataset infers feature kinds from, whatever the loader gives:
        # integers stay numeric, the yes/no and group columns are plain strings.
        frame = frame[list(expected)].copy()
        for column in ARRESTS_NUMERIC:
            frame[column] = frame[column].astype("int64")
        for column in ("released", *ARRESTS_CATEGORICAL):
            frame[column] = frame[column].astype(str).astype(object)
        return SourceTable(name="arrests", frame=frame, label="released", positive="Yes", sensitive=("colour", "sex"))


class FileSource:
    """A CSV or parquet file given with --data; named after the file's stem.

    A file has no default label: the user names it with --label and its positive value with
    --positive (empty defaults here make ``build_dataset`` ask for them).
    """

    name = "file"

    def load(self, path: Path | None) -> SourceTable:
        if path is None:
            raise UsageError("the 'file' data source needs a file: pass --data PATH (.csv or .parquet)")
        path = Path(path)
        return SourceTable(name=path.stem, frame=read_table(path), label="", positive="", sensitive=())


@hookimpl
def gatewise_data_sources() -> list[DataSource]:
    return [ArrestsSource(), FileSource()]
