"""``newsqa``: index articles, ask questions, manage sources, evaluate, train, serve.

Every user error is one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from qa.errors import NewsQAError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="index", metavar="DIR", help="index directory (default: index)")


def _wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="wait while another process writes the index, instead of failing")


def _open(args: argparse.Namespace, *, create: bool):
    from qa.ingest import Fetcher
    from qa.pipeline import NewsQA
    return NewsQA(args.index, reader=getattr(args, "reader", None), create=create,
                  fetcher=Fetcher(allow_private=getattr(args, "allow_private", False)),
                  wait_for_writer=getattr(args, "wait", False))


def cmd_index(args: argparse.Namespace) -> int:
    with _open(args, create=True) as qa:
        report = qa.add_paths(args.paths, progress=sys.stderr.isatty())
    print(f"added {len(report.added)} document(s), {report.chunks} chunk(s); "
          f"{len(report.unchanged)} already indexed; {len(report.near_duplicates)} near-duplicate(s)")
    for title, original in report.near_duplicates:
        print(f"  near-duplicate not indexed: {title!r} (same story as {original})")
    return 0


def answer_to_json(answer) -> dict:
    """The ``--json`` shape of an Answer: its fields, with retrieved chunks as plain dicts."""
    data = dataclasses.asdict(answer)
    data["found"] = answer.found
    return data


def cmd_ask(args: argparse.Namespace) -> int:
    with _open(args, create=False) as qa:
        answer = qa.ask(args.question, top_k=args.top_k, threshold=args.threshold,
                        sources=args.source or None, date_from=args.date_from,
                        date_to=args.date_to)
    if args.json:
        print(json.dumps(answer_to_json(answer), ensure_ascii=False, indent=2))
    elif not answer.found:
        print("Not found in the indexed articles.")
    else:
        print(f"{answer.text}  (confidence {answer.score:.0%})")
        for c in answer.citations:
            meta = ", ".join(x for x in (c.source, c.published) if x)
            print(f"  [{c.doc_id}] {c.title}" + (f" ({meta})" if meta else "")
                  + f" chars {c.start}-{c.end}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    with _open(args, create=False) as qa:
        if args.action == "delete":
            for doc_id in args.ids:
                qa.delete(doc_id)
                print(f"deleted {doc_id}")
            return 0
        docs = qa.documents()
    if args.json:
        print(json.dumps([dataclasses.asdict(d) for d in docs], ensure_ascii=False, indent=2))
    else:
        for d in docs:
            print(f"{d.id}  {d.published or '-':<10}  {d.source or '-':<16}  {d.chunks:>3} chunks  "
                  f"{d.title}")
        print(f"{len(docs)} document(s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from qa.ui import serve
    serve(args.index, host=args.host, port=args.port, allow_private_urls=args.allow_private)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from qa import evaluate, train

    parser = argparse.ArgumentParser(prog="newsqa", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="add files, folders, feeds or URLs to the index")
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    _index_option(p)
    _wait_option(p)
    p.add_argument("--allow-private", action="store_true",
                   help="allow fetching URLs on loopback/private networks")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question from the indexed articles")
    p.add_argument("question")
    _index_option(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--threshold", type=float, help="answer threshold (default: the reader's)")
    p.add_argument("--source", action="append", help="only articles from this source (repeatable)")
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    p.add_argument("--reader", metavar="PATH_OR_ID", help="a transformers QA model")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("sources", help="list or delete indexed articles")
    p.add_argument("action", nargs="?", choices=["list", "delete"], default="list")
    p.add_argument("ids", nargs="*", metavar="DOC_ID")
    _index_option(p)
    _wait_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("serve", help="serve the Gradio app")
    _index_option(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--allow-private", action="store_true",
                   help="allow fetching URLs on loopback/private networks")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="measure EM/F1, retrieval and latency on a SQuAD-style file")
    evaluate.add_arguments(p)
    p.set_defaults(func=evaluate.run)

    p = sub.add_parser("train-reader", help="fine-tune the extractive reader")
    train.add_arguments(p)
    p.set_defaults(func=train.run)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sources" and args.action == "delete" and not args.ids:
        parser.error("sources delete needs at least one DOC_ID")
    try:
        return args.func(args)
    except NewsQAError as exc:
        print(f"newsqa: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("newsqa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
