#!/usr/bin/env python3
"""Baseline for `apex-embedder bench`: ONNX Runtime (the `onnxruntime` package) running the
same all-MiniLM-L6-v2 graph (deploy/local/minilm_onnx.py) on the same token windows.

Usage: bench_minilm_ort.py MODEL.onnx WINDOWS.json THREADS BATCHES SECONDS
WINDOWS.json is a list of token-id lists (each already [CLS] … [SEP]). Prints one JSON
object per (batch) line: {"threads", "batch", "chunks", "seconds", "chunks_per_sec"}.
"""

import json
import sys

import numpy as np
import onnxruntime as ort

from bench_windows import padded, timed


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
        def step(i):
            ids, mask = padded(windows, i, batch)
            session.run(None, {
                "input_ids": np.array(ids, dtype=np.int64),
                "attention_mask": np.array(mask, dtype=np.int64),
            })

        timed(step, threads, batch, seconds, onnxruntime=ort.__version__)

if __name__ == "__main__":
    main()
