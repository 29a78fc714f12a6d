"""What the embedder bench's Python baselines share (bench_minilm_ort.py, bench_minilm_torch.py):
the batch of token windows at a position, padded, and the timed loop that prints one JSON line
per batch size."""

import json
import time


def padded(windows, i, batch):
    """`batch` windows from position `i` (wrapping), right-padded: (ids, mask) as lists."""
    rows = [windows[(i + j) % len(windows)] for j in range(batch)]
    width = max(len(r) for r in rows)
    ids = [r + [0] * (width - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return ids, mask


def timed(step, threads, batch, seconds, **extra):
    """Runs `step(i)` (one batch from window `i`) once to warm up, then for `seconds`, and
    prints {"threads", "batch", "chunks", "seconds", "chunks_per_sec", **extra}."""
    step(0)
    done, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(i)
        i += batch
        done += batch
    elapsed = time.perf_counter() - start
    print(json.dumps({
        "threads": threads,
        "batch": batch,
        "chunks": done,
        "seconds": round(elapsed, 3),
        "chunks_per_sec": done / elapsed,
        **extra,
    }), flush=True)
