"""The CLI's side of following a story (``qa.follow``): ``newsqa follow add|list|remove|history``,
the line that ``index``, ``watch`` and ``serve --watch`` print for each changed answer,
``--on-change CMD``, which runs CMD with the change as JSON on its stdin, and ``ask
--timeline``'s lines."""
from __future__ import annotations

import argparse
import shlex
import subprocess
from typing import TYPE_CHECKING, Sequence

from qa.errors import NewsQAError, clip
from qa.recency import with_resolved
from qa.terminal import as_json, cited, say, table

if TYPE_CHECKING:
    from qa.pipeline import NewsQA
    from qa.types import Answer, FollowChange, FollowEntry

# An --on-change command that runs longer is stopped (one line says so): a hung notifier must not
# hold up the next poll.
ON_CHANGE_SECONDS = 30
FOLLOW_ACTIONS = ("list", "add", "remove", "history")


def run_follow(qa: NewsQA, args: argparse.Namespace) -> int:
    """``newsqa follow``: ``add QUESTION``, ``list``, ``remove ID`` or ``history ID``."""
    if args.action == "add":
        follow = qa.follow(args.target, sources=args.source or None,
                           top_k=qa.config.top_k if args.top_k is None else args.top_k)
        say(f"following {follow.id}: {follow.question}")
        if follow.latest is not None:
            say(f"  now: {entry_line(follow.latest)}")
        else:  # followed all the same: it is asked again after the next commit
            say(f"newsqa: error: {follow.id} could not be asked now: {follow.error}", err=True)
    elif args.action == "remove":
        qa.unfollow(args.target)
        say(f"stopped following {args.target.strip()}")
    elif args.action == "history":
        entries = qa.history(args.target)
        if args.json:
            print(as_json([entry.to_dict() for entry in entries]))
        else:
            for entry in entries:
                say(entry_line(entry))
    else:
        follows = qa.followed()
        if args.json:
            print(as_json([follow.to_dict() for follow in follows]))
            return 0
        for line in table([[f.id, f.question, _answer_of(f.latest), f"{f.changes} change(s)",
                            f"checked {f.checked or 'never'}",
                            f"error: {f.error}" if f.error else ""] for f in follows],
                          right={3}):
            say(line)
        say(f"{len(follows)} followed question(s)")
    return 0


def _answer_of(entry: FollowEntry | None) -> str:
    if entry is None:
        return "-"
    return entry.text if entry.found else "not found"


def entry_line(entry: FollowEntry) -> str:
    """A history entry as one line: the answer, its confidence, where it is cited from, and
    when it was recorded."""
    if entry.citation is None:
        return f"{entry.recorded}  not found in the indexed articles"
    c = entry.citation
    return (f"{entry.recorded}  {with_resolved(entry.text, c.resolved_date)}  "
            f"(confidence {entry.confidence:.0%})  {cited(c)}")


def change_line(change: FollowChange) -> str:
    """A changed answer as the one line ``watch`` and ``index`` print."""
    before = _answer_of(change.before)
    after = change.after
    where = f"  {cited(after.citation)}" if after.citation is not None else ""
    return (f"changed {change.follow.id} {clip(change.follow.question, 80)!r}: {before} -> "
            f"{_answer_of(after)}{where}")


def print_changes(changes: Sequence[FollowChange]) -> None:
    for change in changes:
        say(change_line(change))


class ChangeTeller:
    """What ``watch`` does with each changed answer: prints its line, then runs the
    ``--on-change`` command, if any, with the change as one JSON line on its stdin (no shell:
    the command is split as a shell would, ``shlex.split``). A command that fails, is missing
    or runs past ``ON_CHANGE_SECONDS`` gets one line on stderr, and watching goes on."""

    def __init__(self, command: str | None) -> None:
        try:
            self.argv = shlex.split(command) if command is not None else []
        except ValueError as error:  # an unclosed quote
            raise NewsQAError(f"--on-change {clip(repr(command))} is not a command line "
                              f"({error}).") from None
        if command is not None and not self.argv:
            raise NewsQAError("--on-change needs a command to run.")

    def __call__(self, change: FollowChange) -> None:
        say(change_line(change))
        if not self.argv:
            return
        name = clip(self.argv[0], 80)
        try:
            done = subprocess.run(self.argv, input=as_json(change.to_dict(), None) + "\n",
                                  text=True, stderr=subprocess.PIPE,
                                  timeout=ON_CHANGE_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            say(f"newsqa: error: --on-change {name} ran past {ON_CHANGE_SECONDS} s and was "
                "stopped.", err=True)
        except OSError as error:
            say(f"newsqa: error: --on-change {name} could not run ({error.strerror}).",
                err=True)
        else:
            if done.returncode != 0:
                last = (done.stderr or "").strip().splitlines()[-1:] or [""]
                say(f"newsqa: error: --on-change {name} exited with status {done.returncode}"
                    + (f": {clip(last[0])}" if last[0] else "") + ".", err=True)


def timeline_lines(answer: Answer) -> list[str]:
    """``ask --timeline``: each article's own answer, the oldest first, undated last."""
    if not answer.timeline:
        return ["Timeline: no article read answers it."]
    return ["Timeline (oldest first):"] + [
        f"  {c.published[:10] or 'undated':<10}  {with_resolved(c.quote, c.resolved_date)}  "
        f"(confidence {c.confidence:.0%})  {cited(c)}" for c in answer.timeline]
