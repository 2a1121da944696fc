"""Reaching a Milvus index: its location (a milvus-lite file or a server, and the collections'
name prefix), a client whose every error is one ``StoreError`` line, and what the server can do.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import logging.handlers
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlsplit

from qa.errors import StoreError
from qa.store.base import MILVUS_SCHEME, redacted

# How to add the `milvus` extra. newsqa comes from its source tree or a wheel, not from a package
# index, so `pip install 'newsqa[milvus]'` finds no newsqa; the extra's packages themselves do.
INSTALL_HINT = ("run `pip install -e '.[milvus]'` in newsqa's source tree (or, for a newsqa "
                "installed from a wheel, `pip install pymilvus milvus-lite`)")
DEFAULT_NAME = "newsqa"
LITE_POLL_SECONDS = 1.0  # the longest pause between tries to open a milvus-lite file in use
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
_VERSION = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True)
class MilvusLocation:
    """Where a Milvus index lives: what ``MilvusClient`` connects to, and the collections'
    name prefix."""

    uri: str  # a milvus-lite file (``….db``) or ``http://host:port``
    name: str = DEFAULT_NAME
    token: str = ""  # "user:password" for a server with authentication
    lite: bool = False

    def collection(self, kind: str) -> str:
        return f"{self.name}_{kind}"


def parse_location(location: str) -> MilvusLocation:
    """``milvus:///path/x.db`` or ``milvus://x.db`` (milvus-lite), ``milvus://host:port[/name]``
    (a server); a ``StoreError`` naming the expected forms for anything else."""
    rest = location[len(MILVUS_SCHEME):] if location.startswith(MILVUS_SCHEME) else ""
    if rest.endswith(".db"):
        return MilvusLocation(uri=rest, lite=True)
    parts = urlsplit(f"//{rest}")
    try:
        port = parts.port
    except ValueError:
        port = None
    name = parts.path.strip("/") or DEFAULT_NAME
    if rest.startswith("/") or not parts.hostname or port is None or not _NAME.fullmatch(name):
        raise StoreError(f"{redacted(location)!r} is not a Milvus index: use milvus:///path/"
                         "to/index.db (milvus-lite) or milvus://host:19530[/name] (a server).")
    token = ""
    if parts.username:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return MilvusLocation(uri=f"http://{parts.hostname}:{port}", name=name, token=token)


def has_bm25(server_version: str) -> bool:
    """Whether a Milvus of this version computes BM25 (server 2.5 and later, milvus-lite 3)."""
    if server_version.startswith("milvus_lite"):
        return True
    found = _VERSION.search(server_version)
    return found is not None and (int(found[1]), int(found[2])) >= (2, 5)


class Milvus:
    """A ``MilvusClient`` whose every error is one ``StoreError`` line naming the index."""

    def __init__(self, client: Any, where: str, errors: type[Exception]) -> None:
        self._client, self._where, self._errors = client, where, errors

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except self._errors as error:
                message = getattr(error, "message", "") or str(error)
                raise StoreError(f"Milvus at {self._where}: {message}") from None
        return call


def connect(where: MilvusLocation, shown: str, wait: bool = False) -> Milvus:
    """A client of the Milvus at ``where``; a ``StoreError`` when pymilvus (or milvus-lite)
    is missing, the server cannot be reached, or another process has the milvus-lite file
    open (``wait``: try again, with pauses up to ``LITE_POLL_SECONDS``, until it is free)."""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError:
        raise StoreError(f"pymilvus is not installed: {INSTALL_HINT}") from None
    if where.lite and importlib.util.find_spec("milvus_lite") is None:  # pymilvus starts it
        raise StoreError(f"milvus-lite is not installed: {INSTALL_HINT}")
    pause = 0.05
    while True:
        with _lite_logs() as logged:
            try:
                client = MilvusClient(uri=where.uri, token=where.token)
                return Milvus(client, shown, MilvusException)
            except MilvusException as error:
                causes = [record.exc_info[1] for record in logged if record.exc_info]
                message = str(causes[0]) if causes else error.message
        if not (where.lite and _in_use(causes)):
            raise StoreError(f"Cannot open the Milvus index {shown}: {message}")
        if not wait:
            raise StoreError(f"The index at {shown} is open in another process (milvus-lite "
                             "lets one process at a time open it); try again when it has "
                             "finished, or wait for it (--wait).")
        time.sleep(pause)
        pause = min(2 * pause, LITE_POLL_SECONDS)


@contextlib.contextmanager
def _lite_logs() -> Iterator[list[logging.LogRecord]]:
    """milvus-lite's log records while pymilvus starts it, kept out of the log: it logs a
    traceback when it cannot open its file, whose cause ``connect`` says in one line."""
    logger = logging.getLogger("milvus_lite")
    kept = logging.handlers.BufferingHandler(capacity=1_000)
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(kept)
    try:
        yield kept.buffer
    finally:
        logger.removeHandler(kept)
        logger.propagate = propagate


def _in_use(causes: list[BaseException | None]) -> bool:
    """Whether milvus-lite failed to start because another process has its file open."""
    from milvus_lite.exceptions import DataDirLockedError

    return any(isinstance(cause, DataDirLockedError) for cause in causes)
