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
import time

import torch
from sentence_transformers import SentenceTransformer


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
        def run(i):
            rows = [windows[(i + j) % len(windows)] for j in range(batch)]
            width = max(len(r) for r in rows)
            ids = torch.zeros((batch, width), dtype=torch.long)
            mask = torch.zeros((batch, width), dtype=torch.long)
            for k, r in enumerate(rows):
                ids[k, : len(r)] = torch.tensor(r, dtype=torch.long)
                mask[k, : len(r)] = 1
            with torch.inference_mode():
                model({"input_ids": ids, "attention_mask": mask})["sentence_embedding"]

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
            "torch": torch.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
