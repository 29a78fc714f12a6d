#!/usr/bin/env python3
"""PyTorch baseline for `apex-tools embedder bench`: sentence-transformers (the library most
teams would use) running all-MiniLM-L6-v2 from the same weights on the same token windows
and cores: its whole module chain (transformer, mean pooling, normalisation) under
`torch.inference_mode()`, fed the windows the Rust side tokenised, so only inference is
timed. Runs in the peer venv (deploy/local/bootstrap --peer).

Usage: bench_minilm_torch.py MODEL_DIR WINDOWS.json THREADS BATCHES SECONDS
Prints one JSON object per batch: {"threads", "batch", "chunks", "seconds", "chunks_per_sec"}.
"""

import json
import sys

import torch
from sentence_transformers import SentenceTransformer

from bench_windows import padded, timed


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    model_dir, windows_path, threads, batches, seconds = sys.argv[1:]
    threads, seconds = int(threads), float(seconds)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    windows = json.load(open(windows_path))
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    for batch in [int(b) for b in batches.split(",")]:
        def step(i):
            ids, mask = padded(windows, i, batch)
            with torch.inference_mode():
                model({
                    "input_ids": torch.tensor(ids, dtype=torch.long),
                    "attention_mask": torch.tensor(mask, dtype=torch.long),
                })["sentence_embedding"]

        timed(step, threads, batch, seconds, torch=torch.__version__)

if __name__ == "__main__":
    main()
