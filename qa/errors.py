"""Errors a user can cause; the CLI and the app show their message as one clear line."""


class NewsQAError(Exception):
    """Base class: a bad input or state, described for the user."""


class IngestError(NewsQAError):
    """A path, URL, file or record that cannot be turned into documents."""


class StoreError(NewsQAError):
    """An index directory that is missing, corrupt, or built with another embedder."""


class QuestionError(NewsQAError):
    """An empty, whitespace-only or over-long question."""


MAX_SHOWN_CHARS = 200  # of one value (a URL, a date, a title) quoted in a message


def clip(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters with the length said, so a 100 KB URL or
    date in a message stays one readable line."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"
