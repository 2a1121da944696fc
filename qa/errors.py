"""Errors a user can cause; the CLI and the app show their message as one clear line."""


class NewsQAError(Exception):
    """Base class: a bad input or state, described for the user."""


class IngestError(NewsQAError):
    """A path, URL, file or record that cannot be turned into documents."""


class StoreError(NewsQAError):
    """An index directory that is missing, corrupt, or built with another embedder."""


class QuestionError(NewsQAError):
    """An empty, whitespace-only or over-long question."""
