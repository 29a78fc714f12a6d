"""Baseline for `apex-parser bench`: the Python libraries a user would otherwise pick, run
single-threaded over the same files. Prints one JSON object: {format: {docs, bytes, seconds,
chars, library}}. Not project code: a measuring stick, installed by
`deploy/local/bootstrap --bench` (pypdf, python-docx, beautifulsoup4 + lxml)."""
import json
import os
import sys
import time

import bs4
import docx
import pypdf


def pdf(path):
    reader = pypdf.PdfReader(path)
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def word(path):
    d = docx.Document(path)
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def html(path):
    with open(path, "rb") as f:
        soup = bs4.BeautifulSoup(f.read(), "lxml")
    for tag in soup(["script", "style", "nav", "header", "footer", "aside"]):
        tag.decompose()
    return soup.get_text("\n")


LIBS = {
    ".pdf": ("pdf", "pypdf " + pypdf.__version__, pdf),
    ".docx": ("docx", "python-docx", word),
    ".html": ("html", "beautifulsoup4 " + bs4.__version__ + " (lxml)", html),
}

def per_file(paths):
    """`--files a.pdf b.docx …`: each file's seconds and text (or the library's error)."""
    out = {}
    for path in paths:
        ext = os.path.splitext(path)[1].lower()
        if ext not in LIBS:
            continue
        fmt, lib, fn = LIBS[ext]
        start = time.perf_counter()
        try:
            text = fn(path)
        except Exception as e:  # a refusal is an outcome
            out[path] = {"format": fmt, "library": lib, "error": f"{type(e).__name__}: {e}"}
            continue
        out[path] = {"format": fmt, "library": lib, "seconds": time.perf_counter() - start, "text": text}
    return out


if sys.argv[1] == "--files":
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    print(json.dumps(per_file(sys.argv[2:])))
    sys.exit(0)

root = sys.argv[1]
result = {}
for name in sorted(os.listdir(root)):
    ext = os.path.splitext(name)[1]
    if ext not in LIBS:
        continue
    fmt, lib, fn = LIBS[ext]
    path = os.path.join(root, name)
    size = os.path.getsize(path)
    start = time.perf_counter()
    text = fn(path)
    elapsed = time.perf_counter() - start
    r = result.setdefault(fmt, {"docs": 0, "bytes": 0, "seconds": 0.0, "chars": 0, "library": lib})
    r["docs"] += 1
    r["bytes"] += size
    r["seconds"] += elapsed
    r["chars"] += len(text)
print(json.dumps(result))
