"""Ingest: files, folders, feeds and URLs become ``Document``s (see ``qa.types``).

- ``documents``: ``make_document`` and ``check_document``, where every format ends: text
  normalisation, content-hash ids, keys (the user's id, else the URL), ISO dates, size limits.
- ``files``: targets (``load``, ``load_urls``, ``load_uploads``): files, folders, URLs; an
  article file's key is its path.
- ``formats``: the bytes of each file format (txt, md, html, json, jsonl, RSS/Atom).
- ``fetch``: the guarded ``Fetcher`` (public http(s) addresses only, pinned connections, one
  deadline a fetch); ``urls``: a fetched page or feed as documents.
- ``feeds``: polling subscribed feeds for new articles.

Light on purpose: importing this package loads neither trafilatura nor feedparser.
"""
