"""Reference text for the parser's corpus test: what the Python library a user would
otherwise pick extracts from each file (pypdf for PDF, python-docx for DOCX). Prints one JSON
object {path: {"text": str} | {"error": str}}. Not project code: a measuring stick,
installed in the tools venv by deploy/local/bootstrap."""
import json
import logging
import sys
import warnings

import docx
import pypdf

logging.disable(logging.CRITICAL)
warnings.simplefilter("ignore")


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


result = {}
for path in sys.argv[1:]:
    fn = pdf if path.lower().endswith(".pdf") else word
    try:
        result[path] = {"text": fn(path)}
    except Exception as e:  # the library's refusal is an outcome, not a failure
        result[path] = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(result))
