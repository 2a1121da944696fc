"""URLs: an HTML page becomes one document, a feed one document per entry, fetched by the
guarded ``Fetcher``."""
from __future__ import annotations

from qa.errors import IngestError, clip
from qa.ingest.fetch import Fetcher, Response
from qa.ingest.formats import feed_documents, html_document, parse_feed
from qa.types import Document


def load_url(url: str, fetcher: Fetcher | None = None) -> list[Document]:
    """An HTML page becomes one document, a feed one document per entry."""
    response = (fetcher or Fetcher()).get(url)
    where = clip(url)  # how messages name it
    if _is_html(response):
        return [_page_document(response, where)]
    try:
        feed = parse_feed(response.body, where, feed_headers(response))
    except IngestError:
        raise IngestError(f"{where} is neither an HTML page nor an RSS or Atom feed with "
                          f"entries (content type {clip(_mime(response)) or 'unknown'}).") from None
    return feed_documents(feed, where)


def load_article(url: str, fetcher: Fetcher | None = None,
                 deadline: float | None = None) -> Document:
    """The article at ``url``, which must be an HTML page (a feed item's link), fetched by
    ``deadline`` (see ``Fetcher.get``)."""
    response = (fetcher or Fetcher()).get(url, deadline=deadline)
    if not _is_html(response):
        raise IngestError(f"{clip(url)} is not an HTML page (content type "
                          f"{clip(_mime(response)) or 'unknown'}).")
    return _page_document(response, clip(url))


def _page_document(response: Response, where: str) -> Document:
    """An HTML page's document, dated from its metadata or, failing that, Last-Modified."""
    return html_document(response.body, where, url=response.url, fallback_title=response.url,
                          last_modified=response.headers.get("last-modified", ""))


def feed_headers(response: Response) -> dict[str, str]:
    """What feedparser needs to know of the response to read its encoding and relative links."""
    return {"content-type": response.content_type, "content-location": response.url}


def _mime(response: Response) -> str:
    return response.content_type.split(";")[0].strip().lower()


def _is_html(response: Response) -> bool:
    return _mime(response) in ("text/html", "application/xhtml+xml")
