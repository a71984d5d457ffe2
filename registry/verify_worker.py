"""A verification worker process: ``python -m gatewise.registry.verify_worker``.

It reads (source, public keys, tasks) as one pickle on stdin and writes one pickled chunk result
per task on stdout, in order. The source is a database (its driver's connection target) or a
bundle's ledger.jsonl; a worker loads neither SQLAlchemy nor the schema. A
separate interpreter rather than multiprocessing, so that the caller's main script is never
re-imported (a script without an ``if __name__`` guard would otherwise run its registry writes
again in every worker).
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    import gc

    gc.disable()  # a short-lived process that builds no cycles: collections would only cost time

    from gatewise.registry.verify import run_task

    spec, public_keys, tasks = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    cache: dict = {}
    try:
        for task in tasks:
            pickle.dump(run_task(spec, task, public_keys, cache), out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
    finally:
        source = cache.get("db")
        if source is not None:
            source.dispose()


if __name__ == "__main__":
    main()
