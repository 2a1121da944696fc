"""An index directory: one machine, one writer and many reader processes.

- ``store``: ``Store``, the ``DocumentStore`` of a directory, and its crash-safe generations.
- ``database``: the SQLite database (documents, chunks and their vectors, feeds), its schema
  and upgrades, how it is opened, and the one line for a write the system refused.
- ``lock``: the single-writer ``flock``.
- ``vectors``: chunk vectors in FAISS, saved incrementally; ``attributes``: filters as masks.
- ``keywords``: the BM25 keyword index (SQLite FTS5).
"""
