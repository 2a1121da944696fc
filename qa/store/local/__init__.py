"""An index directory: SQLite holds documents, chunks, the FTS5 keyword index and feeds
(``store``, ``keywords``); FAISS holds the chunk vectors (``vectors``). One machine; one writer
and many reader processes."""
