"""The Python peer of the whole pipeline, for `make bench-peer`: what a team would write
instead of Apex, run on the same documents and cores. pypdf / python-docx / BeautifulSoup +
lxml read the text; the model's own tokenizer cuts it into the windows Apex uses (256 tokens
with special tokens, 32 overlapping); sentence-transformers on PyTorch embeds them (the
same all-MiniLM-L6-v2 weights); psycopg inserts the document and then each chunk with its
vector, one row at a time, into PostgreSQL (a schema of its own, dropped at the end).

  select --corpus DIR --out DIR      copy the PDF, DOCX and HTML files the libraries read
                                     (at least 50 words) to DIR; say which were left out
  run --files DIR --report FILE      the pipeline over DIR's files, timed
  table --python FILE --apex FILE    the comparison with apex-loadtest's report
"""

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

FORMATS = ("pdf", "docx", "html")
MAX_TOKENS = 256 - 2  # the [CLS] and [SEP] the model adds
OVERLAP = 32


def read_text(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix == "pdf":
        import pypdf

        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted:
            raise ValueError("encrypted")
        return "\n".join(page.extract_text() or "" for page in reader.pages)
    if suffix == "docx":
        import docx

        d = docx.Document(str(path))
        parts = [p.text for p in d.paragraphs]
        for table in d.tables:
            for row in table.rows:
                parts.append(" ".join(cell.text for cell in row.cells))
        return "\n".join(parts)
    if suffix in ("html", "htm"):
        from bs4 import BeautifulSoup

        return BeautifulSoup(path.read_bytes(), "lxml").get_text(" ")
    raise ValueError(f"not a format of this benchmark: {suffix}")


def windows(tokenizer, text: str) -> list[str]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    out, start = [], 0
    while start < len(ids):
        out.append(tokenizer.decode(ids[start : start + MAX_TOKENS]))
        if start + MAX_TOKENS >= len(ids):
            break
        start += MAX_TOKENS - OVERLAP
    return out


def select(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kept, left = 0, []
    for fmt in FORMATS:
        for path in sorted((Path(args.corpus) / fmt).iterdir()):
            if not path.is_file():
                continue
            try:
                words = len(read_text(path).split())
            except Exception as e:  # what the library refuses is left out, with why
                left.append(f"{fmt}/{path.name}: {type(e).__name__}: {e}"[:160])
                continue
            if words < 50:
                left.append(f"{fmt}/{path.name}: {words} words")
                continue
            shutil.copy(path, out / path.name)
            kept += 1
    print(f"selected {kept} files; left out {len(left)}:", file=sys.stderr)
    for line in left:
        print(f"  {line}", file=sys.stderr)
    return 0


def run(args) -> int:
    import psycopg
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = 256
    tokenizer = model.tokenizer
    files = sorted(p for p in Path(args.files).iterdir() if p.is_file())
    times = {"parse": 0.0, "chunk": 0.0, "embed": 0.0, "write": 0.0}
    chunks_total, done, failed = 0, 0, []
    with psycopg.connect(args.database_url, autocommit=False) as conn:
        conn.execute("DROP SCHEMA IF EXISTS peer_bench CASCADE")
        conn.execute("CREATE SCHEMA peer_bench")
        conn.execute(
            "CREATE TABLE peer_bench.documents (id bigserial PRIMARY KEY, name text, text text)"
        )
        conn.execute(
            "CREATE TABLE peer_bench.chunks (document_id bigint REFERENCES peer_bench.documents,"
            " ord int, text text, embedding real[])"
        )
        conn.commit()
        started = time.perf_counter()
        for path in files:
            try:
                t = time.perf_counter()
                text = read_text(path)
                times["parse"] += time.perf_counter() - t
                t = time.perf_counter()
                pieces = windows(tokenizer, text)
                times["chunk"] += time.perf_counter() - t
                t = time.perf_counter()
                vectors = model.encode(
                    pieces, batch_size=args.batch, normalize_embeddings=True
                )
                times["embed"] += time.perf_counter() - t
                t = time.perf_counter()
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO peer_bench.documents (name, text) VALUES (%s, %s) RETURNING id",
                        (path.name, text.replace("\x00", "")),
                    )
                    doc_id = cur.fetchone()[0]
                    for i, (piece, vector) in enumerate(zip(pieces, vectors)):
                        cur.execute(
                            "INSERT INTO peer_bench.chunks VALUES (%s, %s, %s, %s)",
                            (doc_id, i, piece.replace("\x00", ""), vector.tolist()),
                        )
                conn.commit()
                times["write"] += time.perf_counter() - t
                chunks_total += len(pieces)
                done += 1
            except Exception as e:
                conn.rollback()
                failed.append(f"{path.name}: {type(e).__name__}: {e}"[:160])
        wall = time.perf_counter() - started
        conn.execute("DROP SCHEMA peer_bench CASCADE")
        conn.commit()
    report = {
        "documents": len(files),
        "succeeded": done,
        "failed": failed,
        "chunks": chunks_total,
        "wall_seconds": wall,
        "docs_per_sec": done / wall,
        "chunks_per_sec": chunks_total / wall,
        "seconds": times,
        "threads": args.threads,
        "batch": args.batch,
        "torch": torch.__version__,
    }
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=1))
    print(
        f"python peer: {done}/{len(files)} documents, {chunks_total} chunks in {wall:.1f} s: "
        f"{report['docs_per_sec']:.2f} docs/s, {report['chunks_per_sec']:.1f} chunks/s "
        f"(parse {times['parse']:.1f} s, chunk {times['chunk']:.1f} s, embed {times['embed']:.1f} s, "
        f"write {times['write']:.1f} s)"
    )
    for f in failed:
        print(f"  failed: {f}")
    return 0


def table(args) -> int:
    py = json.loads(Path(args.python).read_text())
    apex = json.loads(Path(args.apex).read_text())
    rows = [("python peer", py["succeeded"], py["documents"], py["docs_per_sec"], py["chunks_per_sec"], py["chunks"])]
    for p in apex["paths"]:
        rows.append(
            (f"apex {p['path']}", p["succeeded"], p["documents"], p["throughput_docs_per_sec"], p["chunks_per_sec"], p["chunks"])
        )
    print("\n| pipeline | documents | docs/s | chunks | chunks/s | docs/s vs peer | chunks/s vs peer |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ok, n, dps, cps, chunks in rows:
        print(
            f"| {name} | {ok}/{n} | {dps:.2f} | {chunks} | {cps:.1f} | "
            f"{dps / py['docs_per_sec']:.2f} | {cps / py['chunks_per_sec']:.2f} |"
        )
    return 0


def main() -> int:
    # pypdf warns of every font it reads only in part; the text is what is measured.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("select")
    s.add_argument("--corpus", required=True)
    s.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--files", required=True)
    r.add_argument("--report", required=True)
    r.add_argument("--model", default=os.path.expanduser("~/.cache/apex/tools/models/all-MiniLM-L6-v2"))
    r.add_argument("--database-url", default="postgresql://apex:apex-dev@127.0.0.1:5432/apex")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--batch", type=int, default=32)
    t = sub.add_parser("table")
    t.add_argument("--python", required=True)
    t.add_argument("--apex", required=True)
    args = parser.parse_args()
    return {"select": select, "run": run, "table": table}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
