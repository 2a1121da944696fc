"""The request guard: an ASGI middleware in front of the app that bounds every request body
before it is read, and lets events name only files uploaded to the app."""
from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.errors import clip

MAX_UPLOAD_REQUEST_MB = 20  # per upload request: gradio caps each file, not how many are sent
# Per other request (a question, an event, an API call), read before anything parses it. The
# largest is a question from the chat, which sends the whole conversation along (about 2 KB a
# reply): hundreds of questions fit.
MAX_REQUEST_MB = 1


class RequestGuard:
    """Bounds every request body before the app reads it, and lets events name only uploaded
    files.

    An upload (a multipart body) must declare its length, at most ``MAX_UPLOAD_REQUEST_MB``:
    gradio's ``max_file_size`` caps each file, so one request could carry a thousand of them,
    and the HTTP server holds the client to the declared length. Any other body (a question, an
    event, a JSON API call) is read here, at most ``MAX_REQUEST_MB``: a declared length over it
    is refused at once, and a body that declares none (chunked) is counted as it arrives and cut
    off at the cap, never held whole.

    Gradio copies every file an event names (a ``FileData``) into its cache before any handler
    runs, and downloads it with its own client when its ``path`` is a URL: none of the
    ``Fetcher``'s rules (through a proxy, private addresses too), any size, at any pace. So a
    file must be named by a path inside gradio's upload folder, where ``/gradio_api/upload`` put
    it; an event naming any other is refused before gradio sees it. (The ``url`` the browser
    sends with a file is the file's link on this app, read by gradio only in an app that
    ``gr.load`` made.)
    """

    def __init__(self, app: ASGIApp, uploads: str) -> None:
        self.app = app
        self.uploads = Path(uploads).resolve()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        # gradio's own test for a multipart body: anything else may be parsed as JSON
        if headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            if length is None:
                await refuse(411, "An upload must declare its length (Content-Length).",
                             scope, receive, send)
            elif not length.isdigit() or int(length) > MAX_UPLOAD_REQUEST_MB * 2**20:
                await refuse(413, f"An upload may hold at most {MAX_UPLOAD_REQUEST_MB} MB in "
                             "all; upload fewer files at once.", scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        too_big = f"A request other than an upload may hold at most {MAX_REQUEST_MB} MB."
        if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_MB * 2**20):
            await refuse(413, too_big, scope, receive, send)
            return
        body = await read_body(receive, MAX_REQUEST_MB * 2**20)
        if body is None:
            await refuse(413, too_big, scope, receive, send)
            return
        problem = foreign_file(body, self.uploads)
        if problem:
            await refuse(400, problem, scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


async def refuse(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer the request with ``message``, one line, and close the connection (a body left
    unread is not drained either); the app never sees the request."""
    response = PlainTextResponse(message, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body; None once more than ``limit`` bytes arrive (the rest is never read),
    or if the client goes away first (the refusal then reaches no one)."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        size += len(message.get("body", b""))
        if size > limit:
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: ``body`` as it was read, then what the client does next (a
    disconnect, which streaming responses listen for)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def again() -> Message:
        return pending.pop() if pending else await receive()
    return again


def foreign_file(body: bytes, uploads: Path) -> str | None:
    """Why ``body`` is refused if, as JSON, it names a file (a dict gradio treats as a
    ``FileData``) outside ``uploads``; None if it names none, or is no JSON (gradio refuses
    that). JSON nested too deeply to read is refused too, as it cannot be checked."""
    try:
        stack = [json.loads(body)]
    except RecursionError:
        return "The request's JSON is nested too deeply."
    except ValueError:
        return None
    while stack:  # a loop, not recursion: the JSON may be nested as deep as the parser allows
        value = stack.pop()
        if isinstance(value, dict):
            meta, path = value.get("meta"), value.get("path")
            if (isinstance(meta, dict) and meta.get("_type") == "gradio.FileData"
                    and not uploaded(path, uploads)):
                return (f"{clip(repr(path))} is not a file uploaded to this app: files are "
                        "never fetched from a URL or read from a server path.")
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def uploaded(path: object, uploads: Path) -> bool:
    """Whether ``path`` is an absolute path (as ``/gradio_api/upload`` returns; a URL is not)
    inside ``uploads`` once links and ".." are resolved, as gradio resolves it."""
    if not isinstance(path, str) or not os.path.isabs(path):
        return False
    try:
        return uploads in Path(path).resolve().parents
    except (OSError, ValueError):  # a NUL byte, say
        return False
