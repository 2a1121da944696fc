"""newsqa: extractive question answering over news articles, with exact citations."""
from qa.errors import IngestError, NewsQAError, QuestionError, StoreError
from qa.types import Answer, Chunk, Citation, Document, Span

__all__ = ["NewsQA", "Document", "Chunk", "Span", "Citation", "Answer",
           "NewsQAError", "IngestError", "StoreError", "QuestionError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The facade pulls in torch, FAISS and transformers; import it only when asked for, so
    # light modules (types, metrics) stay quick to import.
    if name == "NewsQA":
        from qa.pipeline import NewsQA
        return NewsQA
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
