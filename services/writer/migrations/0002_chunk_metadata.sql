-- How a chunk's text was obtained when not read directly (the parser's Chunk.metadata: for OCR
-- text_source, ocr_engine, ocr_confidence). Empty for text read from the document itself.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
