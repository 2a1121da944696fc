"""``newsqa``: index articles, ask questions, manage sources, evaluate, train, serve.

Every user error is one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import os
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from qa.batch import CSV_COLUMNS, csv_rows, read_questions
from qa.cli_follow import (FOLLOW_ACTIONS, ChangeTeller, print_changes, run_follow,
                           timeline_lines)
from qa.errors import NewsQAError, QuestionError, clip
from qa.recency import with_resolved
from qa.runtime import BACKENDS
from qa.terminal import AS_SPACES, as_json, cited, say, table
from qa.types import IndexConfig, IndexingStopped

if TYPE_CHECKING:
    from qa.pipeline import NewsQA
    from qa.types import Answer, FeedReport

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left
PROGRESS_LINE_DOCS = 1_000  # documents between two progress lines where stderr is not a terminal
# Commands whose modules import torch, transformers or matplotlib: (module, summary). Each is
# imported only when its command runs, never to parse another command.
HEAVY_COMMANDS = {
    "eval": ("qa.evaluation.evaluate",
             "measure EM/F1, retrieval and latency on a SQuAD-style file"),
    "calibrate": ("qa.evaluation.calibrate",
                  "fit the answer decision on `newsqa eval --mode e2e --removed` results"),
    "train-reader": ("qa.training.command", "fine-tune the extractive reader"),
}


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

    stopped = None
    try:
        with _open(args, create=True) as qa:
            report = qa.add_paths(args.paths, limit=args.limit,
                                  progress=sys.stderr.isatty() or _progress_lines())
    except IndexingStopped as error:  # a later batch failed: what the earlier ones committed
        stopped, report = error, error.report
    replaced = (f" ({len(report.replaced)} replacing an older version of their article)"
                if report.replaced else "")
    say(f"added {len(report.added)} document(s), {report.chunks} chunk(s){replaced}; "
        f"{len(report.unchanged)} already indexed; "
        f"{len(report.near_duplicates)} near-duplicate(s)")
    for title, original in report.near_duplicates:
        say(f"  near-duplicate not indexed: {clip(title)!r} (same story as {original})")
    if report.over_limit:
        say(f"  stopped at --limit {args.limit}: {report.over_limit:,} more document(s) not "
            "indexed")
    print_changes(report.changes)
    for error in report.errors:  # the rest was indexed; the exit status says not all of it
        say(f"newsqa: error: {error}", err=True)
    if stopped is not None:
        raise stopped
    return EXIT_ERROR if report.errors else 0


def _progress_lines() -> Callable[[int, int], None]:
    """``NewsQA.add``'s progress for a log, where a bar would be one long line of carriage
    returns: a line each ``PROGRESS_LINE_DOCS`` documents."""
    shown = [0]

    def tell(done: int, total: int) -> None:
        if done // PROGRESS_LINE_DOCS > shown[0] // PROGRESS_LINE_DOCS:
            say(f"indexing: {done:,} of {total:,} documents done", err=True)
        shown[0] = done
    return tell


def _ask(qa: NewsQA, args: argparse.Namespace, question: str) -> Answer:
    return qa.ask(question, top_k=qa.config.top_k if args.top_k is None else args.top_k,
                  threshold=args.threshold, sources=args.source or None,
                  date_from=args.date_from, date_to=args.date_to,
                  include_undated=not args.exclude_undated, as_of=args.as_of,
                  timeline=args.timeline)


def cmd_ask(args: argparse.Namespace) -> int:
    if args.questions is not None:
        return _ask_each(args)
    with _open(args, create=False) as qa:
        answer = _ask(qa, args, args.question)
    if args.json:
        print(as_json(answer.to_dict()))
    elif not answer.found:
        say("Not found in the indexed articles.")
    else:
        say(f"{with_resolved(answer.text, answer.resolved_date)}  "
            f"(confidence {answer.score:.0%})")
        for c in answer.citations:
            say(f"  {cited(c, ids=f'{c.doc_id} · {c.external_id}' if c.external_id else None)}")
        if answer.disagreement:
            say("Sources differ (newest first):")
            for c in answer.disagreement:
                say(f"  {with_resolved(c.quote, c.resolved_date)}  {cited(c, offsets=False)}")
    for line in timeline_lines(answer) if args.timeline and not args.json else []:
        say(line)
    return 0


def _ask_each(args: argparse.Namespace) -> int:
    """``ask --questions FILE`` (``qa.batch``): a JSON line (or CSV rows) an answer, in the
    file's order; a line that is no question gets its one line on stderr, the rest go on, and
    the exit status is 1."""
    lines = read_questions(args.questions)  # before a model loads
    rows = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if rows is not None:
        rows.writerow(CSV_COLUMNS)
    failed = False
    with _open(args, create=False) as qa:
        for line in lines:
            try:
                if line.problem:
                    raise QuestionError(line.problem)
                answer = _ask(qa, args, line.question)
            except QuestionError as error:  # another error (the index, a filter) ends the run
                say(f"newsqa: error: {line.where}: {error}", err=True)
                failed = True
                continue
            if rows is None:
                print(as_json({"id": line.id, "question": line.question,
                               "answer": answer.to_dict()}, indent=None), flush=True)
            else:  # control characters as spaces, as in text output
                rows.writerows([cell.translate(AS_SPACES) if isinstance(cell, str) else cell
                                for cell in row] for row in csv_rows(line.id, answer))
                sys.stdout.flush()
    return EXIT_ERROR if failed else 0


def cmd_sources(args: argparse.Namespace) -> int:
    with _open(args, create=False) as qa:
        if args.action == "delete":
            for doc_id in args.ids:  # an id, or the external id of the user's data
                deleted = qa.delete(doc_id)
                say(f"deleted {deleted}" + ("" if deleted == doc_id else f" ({doc_id})"))
            return 0
        docs = qa.documents()
    if args.json:
        print(as_json([dataclasses.asdict(d) for d in docs]))
        return 0
    # aligned columns (``table``), then the title and the URL; the external ids' only when
    # some article has one
    rows = [[d.id, d.external_id or "-", d.published or "-", d.source or "-",
             f"{d.chunks} chunks", d.title, d.url] for d in docs]
    for line in table([row[:1] + row[2:] for row in rows]
                       if not any(d.external_id for d in docs) else rows):
        say(line)
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
    for line in table([[f.url, f.title or "-", f"{f.items_seen} item(s)",
                         f"last poll {f.last_poll or 'never'}",
                         f"last success {f.last_success or 'never'}",
                         f"error: {f.last_error}" if f.last_error else ""] for f in feeds],
                       right={2}):
        say(line)
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


def cmd_follow(args: argparse.Namespace) -> int:
    with _open(args, create=args.action == "add") as qa:
        return run_follow(qa, args)


def cmd_watch(args: argparse.Namespace) -> int:
    tell = ChangeTeller(args.on_change)  # a bad command line is refused before any poll
    with _open(args, create=False) as qa:
        if args.once:
            return print_feed_reports(qa.refresh_feeds(tell))
        qa.watch(args.every, on_refresh=print_feed_reports, on_change=tell)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from qa.ui.app import serve
    if args.on_change is not None and args.watch is None:
        raise NewsQAError("--on-change runs for the changes that --watch finds: give --watch "
                          "too.")
    tell = ChangeTeller(args.on_change)  # a bad command line is refused before the app loads
    serve(args.index, host=args.host, port=args.port, allow_private_urls=args.allow_private,
          watch=args.watch, on_refresh=print_feed_reports, on_change=tell)
    return 0


def version() -> str:
    """This newsqa's version: its installed package's, or the source tree's where it is not
    installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("newsqa")
    except PackageNotFoundError:
        import qa
        return qa.__version__


class _Version(argparse.Action):
    """``--version``, which looks the version up only when asked: ``importlib.metadata`` takes
    a tenth of a second to import, which no other command should wait for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        say(f"newsqa {version()}")
        parser.exit()


class _AnyOrder(argparse.ArgumentParser):
    """A command's parser that takes its options anywhere: before, between or after its
    positionals (``sources delete --index DIR ID``), where argparse alone wants the positionals
    together."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's
        if self._intermixing:  # the two passes of parse_known_intermixed_args
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser(command: str = "") -> argparse.ArgumentParser:
    """Every command's parser; only ``command`` (the one run) gets its ``HEAVY_COMMANDS`` module
    imported and its options added, so that other commands start without torch."""
    parser = argparse.ArgumentParser(prog="newsqa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_AnyOrder)

    p = sub.add_parser("index", help="add files, folders, feeds or URLs to the index")
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    p.add_argument("--limit", type=int, metavar="N",
                   help="index only the first N documents that the targets hold, in order "
                        "(targets as given, a folder's files by name, a file's records in turn)")
    _index_option(p)
    _wait_option(p)
    _chunk_options(p)
    p.add_argument("--allow-private", action="store_true",
                   help="allow fetching URLs on loopback/private networks")
    _backend_option(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question from the indexed articles")
    p.add_argument("question", nargs="?", metavar="QUESTION",
                   help="the question; or --questions FILE for a file of them")
    p.add_argument("--questions", metavar="FILE",
                   help="answer each line of FILE (- for stdin), a question or a JSON object "
                        "with \"question\" and \"id\", as a JSON line with its citations")
    p.add_argument("--csv", action="store_true",
                   help="with --questions: CSV instead, a row a citation (columns: "
                        + ", ".join(CSV_COLUMNS) + ")")
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
    p.add_argument("--timeline", action="store_true",
                   help="also list each article's own answer by the article's date")
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

    p = sub.add_parser("follow", help="follow a question: asked again whenever the articles "
                                      "change, with the history of its answers")
    p.add_argument("action", nargs="?", choices=FOLLOW_ACTIONS, default="list")
    p.add_argument("target", nargs="?", metavar="QUESTION_OR_ID",
                   help="add: the question; remove, history: its id (from follow list)")
    _index_option(p)
    _wait_option(p)
    p.add_argument("--source", action="append", help="add: only articles from this source "
                                                     "(repeatable)")
    p.add_argument("--top-k", type=int, metavar="N", help="add: passages the reader reads")
    _backend_option(p)
    p.add_argument("--json", action="store_true", help="list, history: as JSON")
    p.set_defaults(func=cmd_follow)

    p = sub.add_parser("watch", help="keep the index fresh: poll the subscribed feeds")
    _index_option(p)
    p.add_argument("--every", default="15m", metavar="INTERVAL",
                   help="time between polls: 30s, 15m, 2h or seconds (default: 15m)")
    p.add_argument("--once", action="store_true", help="poll each feed once and exit")
    p.add_argument("--on-change", metavar="CMD",
                   help="run CMD (no shell) with each change of a followed answer as JSON on "
                        "its stdin, e.g. to send a mail or a desktop notification")
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
                   help="refresh the subscribed feeds in the background (default: every 15m), "
                        "printing each change of a followed answer")
    p.add_argument("--on-change", metavar="CMD",
                   help="with --watch: run CMD (no shell) with each change of a followed "
                        "answer as JSON on its stdin, as `watch --on-change` does")
    p.set_defaults(func=cmd_serve)

    for name, (module_name, summary) in HEAVY_COMMANDS.items():
        p = sub.add_parser(name, help=summary)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``newsqa`` with ``argv`` (default: the command line); return its exit status."""
    try:
        status = _main(sys.argv[1:] if argv is None else list(argv))
        sys.stdout.flush()  # what is still buffered meets a reader that left here, not at exit
        return status
    except BrokenPipeError:
        # Whoever read stdout has gone (`newsqa sources | head -1`): stop quietly, as a tool
        # that SIGPIPE ends does. stdout goes to /dev/null, or Python's own flush at exit would
        # fail on it again (the recipe of Python's signal module documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: list[str]) -> int:
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
    if args.command == "ask" and (args.question is None) == (args.questions is None):
        parser.error("ask takes a QUESTION or --questions FILE" + (
            "" if args.question is None else ", not both"))
    if args.command == "ask" and args.csv and args.questions is None:
        parser.error("--csv is for --questions FILE: its answers, a row a citation")
    if args.command == "sources" and args.action == "delete" and not args.ids:
        parser.error("sources delete needs at least one DOC_ID")
    if args.command == "follow" and (args.action == "list") != (args.target is None):
        parser.error("follow list takes no argument" if args.target is not None else
                     f"follow {args.action} needs " + ("a QUESTION" if args.action == "add"
                                                       else "an ID (see follow list)"))
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
