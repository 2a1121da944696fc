"""``newsqa``: index articles, ask questions, manage sources, evaluate, train, serve.

Every user error is one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from typing import TYPE_CHECKING, Sequence

from qa.errors import NewsQAError, clip
from qa.recency import with_resolved
from qa.runtime import BACKENDS
from qa.types import IndexConfig

if TYPE_CHECKING:
    from qa.pipeline import FeedReport

EXIT_ERROR = 1
EXIT_USAGE = 2
# What the CLI prints comes from articles and feeds (titles, sources, quotes, errors naming
# them): their control characters could clear the screen, set the window title or write the
# clipboard (OSC 52) of whoever reads the output. Text gets each as a space (a newline too: one
# line a record); JSON, which escapes C0 itself, gets DEL and C1 escaped as well.
_AS_SPACES = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], " ")
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}

# Commands whose modules import torch, transformers or matplotlib: (module, summary). Each is
# imported only when its command runs, never to parse another command.
HEAVY_COMMANDS = {
    "eval": ("qa.evaluation.evaluate",
             "measure EM/F1, retrieval and latency on a SQuAD-style file"),
    "calibrate": ("qa.evaluation.calibrate",
                  "fit the answer decision on `newsqa eval --mode e2e --removed` results"),
    "train-reader": ("qa.training.command", "fine-tune the extractive reader"),
}


def say(text: str, *, err: bool = False) -> None:
    """Print one line, on stderr with ``err``, every control character in it a space."""
    print(text.translate(_AS_SPACES), file=sys.stderr if err else sys.stdout, flush=True)


def as_json(data: object) -> str:
    """``data`` as indented JSON that no terminal reads a control character in."""
    return json.dumps(data, ensure_ascii=False, indent=2).translate(_JSON_ESCAPES)


def _index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="index", metavar="DIR_OR_URI",
                   help="index directory (default: index), or a Milvus index: "
                        "milvus:///path/to/index.db (milvus-lite) or milvus://host:19530")


def _wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="wait while another process writes the index, instead of failing")


def _backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS,
                   help="what runs the embedder and the reader: torch, or onnx (ONNX "
                        "Runtime, int8, exported on first use and cached; starts without torch)")


def _chunk_options(p: argparse.ArgumentParser) -> None:
    defaults = IndexConfig()
    p.add_argument("--chunk-chars", type=int, metavar="N",
                   help="the longest chunk, in characters, for a new index (default: "
                        f"{defaults.max_chars}); an existing index must have been built with it")
    p.add_argument("--chunk-overlap", type=int, metavar="N",
                   help="sentences that consecutive chunks share, likewise (default: "
                        f"{defaults.overlap_sentences})")


def _config(args: argparse.Namespace) -> IndexConfig | None:
    """The chunk settings asked for, one left out taking its default; None when neither was:
    then the index's own are used."""
    asked = {name: value for name, value in (("max_chars", getattr(args, "chunk_chars", None)),
             ("overlap_sentences", getattr(args, "chunk_overlap", None))) if value is not None}
    return IndexConfig(**asked) if asked else None


def _open(args: argparse.Namespace, *, create: bool):
    from qa.ingest.fetch import Fetcher
    from qa.pipeline import NewsQA
    return NewsQA(args.index, config=_config(args), reader=getattr(args, "reader", None),
                  create=create,
                  fetcher=Fetcher(allow_private=getattr(args, "allow_private", False)),
                  wait_for_writer=getattr(args, "wait", False),
                  backend=getattr(args, "backend", None))


def cmd_index(args: argparse.Namespace) -> int:
    from qa.pipeline import IndexingStopped

    stopped = None
    try:
        with _open(args, create=True) as qa:
            report = qa.add_paths(args.paths, progress=sys.stderr.isatty())
    except IndexingStopped as error:  # a later batch failed: what the earlier ones committed
        stopped, report = error, error.report
    say(f"added {len(report.added)} document(s), {report.chunks} chunk(s); "
        f"{len(report.unchanged)} already indexed; "
        f"{len(report.near_duplicates)} near-duplicate(s)")
    for title, original in report.near_duplicates:
        say(f"  near-duplicate not indexed: {clip(title)!r} (same story as {original})")
    for error in report.errors:  # the rest was indexed; the exit status says not all of it
        say(f"newsqa: error: {error}", err=True)
    if stopped is not None:
        raise stopped
    return EXIT_ERROR if report.errors else 0


def cmd_ask(args: argparse.Namespace) -> int:
    with _open(args, create=False) as qa:
        answer = qa.ask(args.question,
                        top_k=qa.config.top_k if args.top_k is None else args.top_k,
                        threshold=args.threshold,
                        sources=args.source or None, date_from=args.date_from,
                        date_to=args.date_to, include_undated=not args.exclude_undated,
                        as_of=args.as_of)
    if args.json:
        print(as_json(answer.to_dict()))
    elif not answer.found:
        say("Not found in the indexed articles.")
    else:
        say(f"{with_resolved(answer.text, answer.resolved_date)}  "
            f"(confidence {answer.score:.0%})")
        for c in answer.citations:
            meta = ", ".join(x for x in (c.source, c.date_label) if x)
            say(f"  [{c.doc_id}] {c.title}" + (f" ({meta})" if meta else "")
                + f" chars {c.start}-{c.end}")
        if answer.disagreement:
            say("Sources differ (newest first):")
            for c in answer.disagreement:
                meta = ", ".join(x for x in (c.source, c.date_label) if x)
                say(f"  {with_resolved(c.quote, c.resolved_date)}  [{c.doc_id}] {c.title}"
                    + (f" ({meta})" if meta else ""))
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    with _open(args, create=False) as qa:
        if args.action == "delete":
            for doc_id in args.ids:
                qa.delete(doc_id)
                say(f"deleted {doc_id}")
            return 0
        docs = qa.documents()
    if args.json:
        print(as_json([dataclasses.asdict(d) for d in docs]))
    else:
        for d in docs:
            say(f"{d.id}  {d.published or '-':<10}  {d.source or '-':<16}  {d.chunks:>3} chunks  "
                f"{d.title}")
        say(f"{len(docs)} document(s)")
    return 0


def cmd_feeds(args: argparse.Namespace) -> int:
    failed = False
    with _open(args, create=args.action == "add") as qa:
        for url in args.urls:  # add or remove: a bad URL gets its line, and the rest go on
            try:
                if args.action == "remove":
                    qa.unsubscribe(url)
                    say(f"unsubscribed from {url} (its articles stay indexed)")
                else:
                    say(f"{'subscribed to' if qa.subscribe(url) else 'already subscribed to'} "
                        f"{url}")
            except NewsQAError as error:
                say(f"newsqa: error: {error}", err=True)
                failed = True
        feeds = qa.feeds() if args.action == "list" else []
    if args.action != "list":
        return EXIT_ERROR if failed else 0
    if args.json:
        print(as_json([dataclasses.asdict(f) for f in feeds]))
        return 0
    for f in feeds:
        say(f"{f.url}  {f.title or '-'}  {f.items_seen} item(s)  last poll "
            f"{f.last_poll or 'never'}, last success {f.last_success or 'never'}"
            + (f"  error: {f.last_error}" if f.last_error else ""))
    say(f"{len(feeds)} feed(s)")
    return 0


def print_feed_reports(reports: Sequence[FeedReport]) -> int:
    """One line a feed on stdout, one a problem on stderr; the exit status of the round."""
    if not reports:
        say("no feeds subscribed: add one with `newsqa feeds add URL`")
    failed = False
    for report in reports:
        items = report.items
        if report.error:
            say(f"newsqa: error: {report.error}", err=True)
        elif report.not_modified:
            say(f"{report.url}: not modified")
        else:
            say(f"{report.url}: {len(items.added)} new article(s), {len(items.unchanged)} "
                f"already indexed, {len(items.near_duplicates)} near-duplicate(s), "
                f"{len(items.errors)} skipped")
        for error in items.errors:
            say(f"newsqa: error: {error}", err=True)
        failed = failed or bool(report.error or items.errors)
    return EXIT_ERROR if failed else 0


def cmd_watch(args: argparse.Namespace) -> int:
    with _open(args, create=False) as qa:
        if args.once:
            return print_feed_reports(qa.refresh_feeds())
        qa.watch(args.every, on_refresh=print_feed_reports)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from qa.ui.app import serve
    serve(args.index, host=args.host, port=args.port, allow_private_urls=args.allow_private,
          watch=args.watch, on_refresh=print_feed_reports)
    return 0


def build_parser(command: str = "") -> argparse.ArgumentParser:
    """Every command's parser; only ``command`` (the one run) gets its ``HEAVY_COMMANDS`` module
    imported and its options added, so that other commands start without torch."""
    parser = argparse.ArgumentParser(prog="newsqa", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="add files, folders, feeds or URLs to the index")
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    _index_option(p)
    _wait_option(p)
    _chunk_options(p)
    p.add_argument("--allow-private", action="store_true",
                   help="allow fetching URLs on loopback/private networks")
    _backend_option(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question from the indexed articles")
    p.add_argument("question")
    _index_option(p)
    p.add_argument("--top-k", type=int, metavar="N",
                   help=f"passages the reader reads (default: {IndexConfig().top_k})")
    p.add_argument("--threshold", type=float,
                   help="confidence to answer from (default: the answer decision's, qa/decide.py)")
    p.add_argument("--source", action="append", help="only articles from this source (repeatable)")
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    p.add_argument("--exclude-undated", action="store_true",
                   help="leave out articles without a publication date (kept by default)")
    p.add_argument("--as-of", metavar="YYYY-MM-DD",
                   help="'now' for questions about the latest news (default: today)")
    p.add_argument("--reader", metavar="PATH_OR_ID", help="a transformers QA model")
    _backend_option(p)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("sources", help="list or delete indexed articles")
    p.add_argument("action", nargs="?", choices=["list", "delete"], default="list")
    p.add_argument("ids", nargs="*", metavar="DOC_ID")
    _index_option(p)
    _wait_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("feeds", help="subscribe to RSS/Atom feeds, list or remove them")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("urls", nargs="*", metavar="URL")
    _index_option(p)
    _wait_option(p)
    p.add_argument("--allow-private", action="store_true",
                   help="allow feeds on loopback/private networks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_feeds)

    p = sub.add_parser("watch", help="keep the index fresh: poll the subscribed feeds")
    _index_option(p)
    p.add_argument("--every", default="15m", metavar="INTERVAL",
                   help="time between polls: 30s, 15m, 2h or seconds (default: 15m)")
    p.add_argument("--once", action="store_true", help="poll each feed once and exit")
    p.add_argument("--allow-private", action="store_true",
                   help="allow fetching URLs on loopback/private networks")
    p.set_defaults(func=cmd_watch, wait=True)  # a refresher waits out another writer

    p = sub.add_parser("serve", help="serve the Gradio app")
    _index_option(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--allow-private", action="store_true",
                   help="allow fetching URLs on loopback/private networks")
    p.add_argument("--watch", nargs="?", const="15m", metavar="INTERVAL",
                   help="refresh the subscribed feeds in the background (default: every 15m)")
    p.set_defaults(func=cmd_serve)

    for name, (module_name, summary) in HEAVY_COMMANDS.items():
        p = sub.add_parser(name, help=summary)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Python decodes bytes that are not UTF-8 (a file name, an id, a question typed in another
    # encoding) to lone surrogates, which fail far away, in SQLite or the tokenizer.
    for n, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            print(f"newsqa: error: argument {n} ({ascii(arg)}) is not valid UTF-8 text.",
                  file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser(next((arg for arg in argv if not arg.startswith("-")), ""))
    args = parser.parse_args(argv)
    args.command_line = " ".join(["newsqa", *argv])  # what a record of the run names (calibrate)
    if args.command == "sources" and args.action == "delete" and not args.ids:
        parser.error("sources delete needs at least one DOC_ID")
    if args.command == "feeds" and (args.action == "list") == bool(args.urls):
        parser.error("feeds list takes no URL" if args.urls
                     else f"feeds {args.action} needs at least one URL")
    try:
        return args.func(args)
    except NewsQAError as exc:
        say(f"newsqa: error: {exc}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("newsqa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
