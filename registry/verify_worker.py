"""A verification worker process: ``python -m gatewise.registry.verify_worker``.

It reads (url, public keys, chunk ranges) as one pickle on stdin and writes one pickled chunk
result per range on stdout, in order. A separate interpreter rather than multiprocessing, so that
the caller's main script is never re-imported (a script without an ``if __name__`` guard would
otherwise run its registry writes again in every worker).
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from gatewise.registry.database import make_engine
    from gatewise.registry.verify import check_chunk

    url, public_keys, ranges = pickle.load(sys.stdin.buffer)
    engine = make_engine(url, writable=False)
    out = sys.stdout.buffer
    try:
        for lo, hi in ranges:
            pickle.dump(check_chunk(engine, lo, hi, public_keys), out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
