"""Targets: files, folders (recursively) and URLs, loaded into documents (``load``; the app's
``load_urls`` and ``load_uploads``). Only regular files inside the folder being indexed are
read, checked on the opened file, and no file is read past its size limit.
"""
from __future__ import annotations

import errno
import gzip
import logging
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from qa.errors import IngestError
from qa.ingest import documents
from qa.ingest.formats import LOADERS, feed_documents, parse_feed
from qa.ingest.urls import load_url
from qa.types import Document, document_key

if TYPE_CHECKING:
    from qa.ingest.fetch import Fetcher

log = logging.getLogger(__name__)

URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # any scheme, so ftp:// is refused clearly
# A file of many documents (JSON, JSON Lines, a feed), after gunzipping; settable at run time:
# about 4 times the largest corpus used here (Reuters-21578, 22 MB of JSON Lines).
MAX_FILE_BYTES = 100_000_000
# Formats that hold one document a file. Their limit is 4 bytes (the most UTF-8 takes for one
# character) a character of documents.MAX_DOCUMENT_CHARS (read when a file is, so a value set
# at run time holds): a bigger text file cannot fit, so it is not read.
_ARTICLE_FORMATS = (".txt", ".md", ".html", ".htm")


class _RefusedFile(IngestError):
    """A file that turned out, once open, not to be one to read: not a regular file, or outside
    the folder being indexed. In a folder it is an error, never a skipped format."""


_T = TypeVar("_T")
Errors = list[str] | None  # where to note a bad target and go on; None: raise at the first


def load(targets: Iterable[str | Path], *, fetcher: Fetcher | None = None,
         errors: Errors = None) -> list[Document]:
    """Load every target: a file, a folder (recursively) or an http(s) URL.

    With an ``errors`` list, a target (or a file in a folder) that cannot be loaded adds its one
    line there and the others still load; without, the first one raises ``IngestError``.
    """
    return _each(_listed(targets, "load"), lambda t: _load_target(t, fetcher, errors), errors)


def load_urls(urls: Iterable[str], fetcher: Fetcher | None = None, *,
              errors: Errors = None) -> list[Document]:
    """Fetch http(s) URLs only: an address typed into a web page must never name a local file,
    so anything else is refused by the fetcher's guard before the disk is touched."""
    return _each(_listed(urls, "load_urls"), lambda url: load_url(str(url), fetcher), errors)


def load_uploads(paths: Iterable[str | Path], *, errors: Errors = None) -> list[Document]:
    """Exactly the given uploaded files: never a folder or a symbolic link. Errors name a file by
    its name alone, because the app must not reveal where the server keeps uploads."""
    return _each(_listed(paths, "load_uploads"), lambda path: _load_upload(Path(path)), errors)


def _listed(targets: Iterable[str | Path], caller: str) -> Iterable[str | Path]:
    if isinstance(targets, (str, Path)):  # iterating it would load one path per character
        raise TypeError(f"{caller}() takes a list of targets, not the single target {targets!r}.")
    return targets


def _each(items: Iterable[_T], load_one: Callable[[_T], list[Document]],
          errors: Errors) -> list[Document]:
    """The documents of every item; a failing item is noted in ``errors`` (or raises)."""
    docs: list[Document] = []
    for item in items:
        try:
            docs += load_one(item)
        except IngestError as err:
            if errors is None:
                raise
            errors.append(str(err))
    return docs


def _load_target(target: str | Path, fetcher: Fetcher | None, errors: Errors) -> list[Document]:
    if isinstance(target, str) and URL_PATTERN.match(target):
        return load_url(target, fetcher)
    path = Path(target)
    try:
        is_folder = stat.S_ISDIR(path.stat().st_mode)
    except OSError as err:  # Path.exists() would raise some, such as a name too long
        raise _cannot_read(path, err) from None
    if is_folder:
        return _load_folder(path, errors)
    return _named_by_path(path, _load_file(path, named=True))


def _load_upload(path: Path) -> list[Document]:
    """One uploaded file, its server path replaced by its name in any error."""
    try:
        if path.is_symlink() or not path.is_file():
            raise IngestError(f"{path} is not a regular file.")
        return _load_file(path, named=True)
    except IngestError as err:
        raise IngestError(str(err).replace(str(path), path.name)) from None


def _load_folder(folder: Path, errors: Errors = None) -> list[Document]:
    """Every supported file under ``folder``, in sorted order, skipping hidden files and folders.

    Links never lead out of ``folder``: one that points outside is skipped with a warning. Linked
    folders are not entered (a link cycle cannot loop), and a linked file inside is read once.
    Only regular files are read: a FIFO, device or socket is skipped with a warning. Each file is
    checked again once it is open (``_open``): a file swapped for a link out or a FIFO after the
    listing is refused too. A folder that cannot be listed fails like a file that cannot be read.
    """
    root = folder.resolve()
    found: list[Path] = []
    unlisted: list[OSError] = []  # os.walk passes over a folder it cannot list without a word
    for where, dirs, names in os.walk(folder, onerror=unlisted.append):  # links not entered
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        # os.path.islink, unlike Path.is_symlink, is False where lstat fails (a name too long):
        # os.walk then fails to list that folder, and says so through ``unlisted``
        for linked in [Path(where, d) for d in dirs if os.path.islink(Path(where, d))]:
            _real_inside(linked, root)  # only to warn: files inside are read where they are
        found += [Path(where, name) for name in names if not name.startswith(".")]
    files: list[Path] = []
    seen: set[Path] = set()
    for path in sorted(found):
        real = _real_inside(path, root)
        if real is None or real in seen:
            continue
        try:
            mode = real.stat().st_mode
        except OSError as err:  # a link to nothing, or a file gone since the listing
            log.warning("Skipping: %s", _cannot_read(path, err))
            continue
        if not stat.S_ISREG(mode):
            log.warning("Skipping: %s", _not_regular(path, mode))
            continue
        seen.add(real)
        files.append(path)
    noted = len(errors or [])
    docs = _each(unlisted, _refuse_unlisted, errors)
    docs += _each(files, lambda path: _named_by_path(path, _load_file(path, named=False,
                                                                      root=root)), errors)
    if not docs and len(errors or []) == noted:  # no file failed: there was nothing to read
        raise IngestError(f"{folder} contains no supported files.")
    return docs


def _named_by_path(path: Path, docs: list[Document]) -> list[Document]:
    """The article of a txt, md or html file keyed by the file's resolved path unless its URL
    keys it (``qa.types.document_key``), so that indexing the edited file replaces it. Uploads
    are not keyed so: where the server puts an upload says nothing of the article."""
    if _format_of(path) not in _ARTICLE_FORMATS:
        return docs  # a file of many articles: each is named by its own id or URL, if any
    # a name that is not UTF-8 (surrogate escapes) cannot be stored: U+FFFD, as file managers do
    where = os.fsencode(path.resolve()).decode("utf-8", "replace")
    return [doc if doc.key else replace(doc, key=document_key(path=where)) for doc in docs]


def _real_inside(path: Path, root: Path) -> Path | None:
    """The real path of ``path`` if it is under ``root``; None, with a warning, for a link out."""
    real = Path(os.path.realpath(path))  # Path.resolve raises RuntimeError for a link loop
    if real.is_relative_to(root):
        return real
    log.warning("Skipping %s: it links to outside the folder being indexed.", path)
    return None


def _refuse_unlisted(err: OSError) -> list[Document]:
    """Raises the one line for a folder that ``os.walk`` could not list."""
    raise _cannot_read(err.filename, err)


def _cannot_read(path: Path | str, err: OSError) -> IngestError:
    """The one line for a file or folder that the system would not open, list or look up."""
    if isinstance(err, (FileNotFoundError, NotADirectoryError)):
        return IngestError(f"{path} does not exist.")
    reason = "permission denied" if isinstance(err, PermissionError) else err.strerror
    return IngestError(f"{path} cannot be read ({reason}).")


# What a path that is not a regular file is, for the line that refuses it
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"))


def _not_regular(path: Path, mode: int) -> _RefusedFile:
    """The one line refusing ``path``, whose ``st_mode`` is ``mode``: reading a FIFO waits for a
    writer, perhaps forever, and a device such as /dev/zero never ends."""
    kind = next((f" but {name}" for is_kind, name in _KINDS if is_kind(mode)), "")
    return _RefusedFile(f"{path} is not a regular file{kind}; only regular files are read.")


def _load_file(path: Path, *, named: bool, root: Path | None = None) -> list[Document]:
    """Dispatch on the suffix; an unknown suffix is still accepted when the file is a feed.
    ``root``: the real folder being indexed, which the file must be in once it is open."""
    loader = LOADERS.get(_format_of(path))
    if loader is not None:
        return loader(_read(path, root), path)
    if _starts_like_xml(path, root):
        try:
            return feed_documents(parse_feed(_read(path, root), str(path)), str(path))
        except IngestError as err:
            if named or isinstance(err, _RefusedFile):
                raise
            log.warning("Skipping: %s", err)  # in a folder, XML that is no feed; err names it
            return []
    if named:
        raise IngestError(f"{path} is not a supported file type "
                          f"(supported: {', '.join(sorted(LOADERS))}, optionally gzipped).")
    log.warning("Skipping %s: not a supported file type.", path)
    return []


def _format_of(path: Path) -> str:
    """The suffix that names the format: ``.jsonl`` for ``corpus.jsonl.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _open(path: Path, root: Path | None) -> BinaryIO:
    """``path`` open for reading if it is a regular file; with ``root``, only if the file opened
    is inside it.

    The checks are made on the open file (``fstat``, and its path from ``/proc/self/fd``; where
    there is no such folder, the path resolved after opening), so nothing can swap the file for
    a FIFO, a device or a link out between the check and the read. It is opened without waiting:
    opening a FIFO to read would otherwise wait for a writer, perhaps forever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket cannot be opened at all: say what it is
            raise _not_regular(path, os.stat(path).st_mode) from None
        raise
    file = os.fdopen(fd, "rb")
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        os.set_blocking(fd, True)  # O_NONBLOCK was for the open alone
        if root is not None:
            proc = Path(f"/proc/self/fd/{fd}")
            real = Path(os.readlink(proc)) if proc.is_symlink() else path.resolve()
            if not real.is_relative_to(root):
                raise _RefusedFile(f"{path} links to outside the folder being indexed; skipped.")
    except BaseException:
        file.close()
        raise
    return file


def _read(path: Path, root: Path | None = None) -> bytes:
    """The file's bytes (gunzipped), refusing unreadable, oversized, empty and binary files, and
    (``_open``) what is not a regular file and, with ``root``, files outside it.

    At most one byte over the limit is read, or inflated from a gzip stream, so a huge file or a
    gzip bomb costs no more memory than the limit.
    """
    gzipped = path.suffix.lower() == ".gz"
    article = _format_of(path) in _ARTICLE_FORMATS
    limit = 4 * documents.MAX_DOCUMENT_CHARS if article else MAX_FILE_BYTES
    try:
        with _open(path, root) as file:
            raw = _inflate(file, limit, path) if gzipped else file.read(limit + 1)
    except OSError as err:
        raise _cannot_read(path, err) from None
    if len(raw) > limit:
        setting = "documents.MAX_DOCUMENT_CHARS" if article else "files.MAX_FILE_BYTES"
        raise IngestError(f"{path} {'unpacks to' if gzipped else 'is'} more than {limit:,} bytes, "
                          f"the limit for {'one article' if article else 'a file'} "
                          f"(set by qa.ingest.{setting}).")
    if not raw.strip():
        raise IngestError(f"{path} is empty.")
    if b"\0" in raw:
        raise IngestError(f"{path} is a binary file, not text.")
    return raw


def _inflate(file: BinaryIO, limit: int, path: Path) -> bytes:
    """At most ``limit + 1`` bytes of a gzip stream: it is never inflated further."""
    try:
        return gzip.GzipFile(fileobj=file).read(limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise IngestError(f"{path} is not a valid gzip file.") from None


def _starts_like_xml(path: Path, root: Path | None = None) -> bool:
    """Whether an unknown-suffix file may be a feed: it starts like XML. Only its head is read,
    so a folder's images and archives cost nothing; a feed's parse error is then reported."""
    try:
        with _open(path, root) as f:
            head = f.read(512)
    except OSError:
        return False  # reported as an unsupported file, as before it was opened
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
