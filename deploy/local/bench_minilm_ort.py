#!/usr/bin/env python3
"""Baseline for `apex-embedder bench`: ONNX Runtime (the `onnxruntime` package) running the
same all-MiniLM-L6-v2 graph (deploy/local/minilm_onnx.py) on the same token windows.

Usage: bench_minilm_ort.py MODEL.onnx WINDOWS.json THREADS BATCHES SECONDS
WINDOWS.json is a list of token-id lists (each already [CLS] … [SEP]). Prints one JSON
object per (batch) line: {"threads", "batch", "chunks", "seconds", "chunks_per_sec"}.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    model, windows_path, threads, batches, seconds = sys.argv[1:]
    threads, seconds = int(threads), float(seconds)
    windows = json.load(open(windows_path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    for batch in [int(b) for b in batches.split(",")]:
        def run(i):
            rows = [windows[(i + j) % len(windows)] for j in range(batch)]
            width = max(len(r) for r in rows)
            ids = np.zeros((batch, width), dtype=np.int64)
            mask = np.zeros((batch, width), dtype=np.int64)
            for k, r in enumerate(rows):
                ids[k, : len(r)] = r
                mask[k, : len(r)] = 1
            session.run(None, {"input_ids": ids, "attention_mask": mask})

        run(0)  # warm up
        done, i, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            run(i)
            i += batch
            done += batch
        elapsed = time.perf_counter() - start
        print(json.dumps({
            "threads": threads,
            "batch": batch,
            "chunks": done,
            "seconds": round(elapsed, 3),
            "chunks_per_sec": done / elapsed,
            "onnxruntime": ort.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
