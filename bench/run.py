"""Run every benchmark in bench/ (bench_*.py), one after another, each in its own process.

Each benchmark prints ratios against a baseline it measures in the same run, because these
machines are shared and absolute times move by +-50% between runs. `make bench` runs this.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    failed = []
    for script in sorted(Path(__file__).parent.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
