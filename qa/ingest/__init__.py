"""Ingest: files, folders, feeds and URLs become ``Document``s (see ``qa.types``)."""
