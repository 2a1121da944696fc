"""Follow a story: standing questions, asked again whenever the articles change, and the
history of their answers.

A followed question (``Followed``) lives in the index (``DocumentStore.follows``), so every
process that opens it sees it. After a commit that adds, replaces or deletes articles, the
writer that committed asks each one again (``Following._reask``: at the end of ``NewsQA.add``,
after ``delete``, once per round of ``refresh_feeds``) about the current state, as of today,
so that the newest article wins where the sources differ (``qa.recency``). Its history gets a
new entry when the answer changed (``next_entry``): its normalised text differs, or it was
found and is not, or the other way round. The same answer from a newer article moves the
latest entry on to that article's citation and adds no entry. A question that cannot be asked
gets the error recorded on it (``Followed.error``): re-asking never makes a commit fail.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from qa.answer import compose_timeline, newest_first
from qa.errors import NewsQAError, clip
from qa.recency import parse_day, today
from qa.store.base import DocumentStore, redacted, utc_now
from qa.text import normalize_answer
from qa.types import (Answer, Chunk, Citation, Document, Filter, FollowChange, FollowEntry,
                      Followed, Hit)
from qa.validate import (validate_filter, validate_follow_id, validate_question,
                         validate_top_k)

if TYPE_CHECKING:
    from pathlib import Path

    from qa.decide import Decision
    from qa.reader.model import Reader

log = logging.getLogger(__name__)

# Questions asked at once when re-asking: the reader reads the questions waiting for it in one
# batch (``qa.reader.model.Reader.read``). On two busy CPU cores that was within the noise of
# asking them one at a time (``benchmarks/follow.py``); bigger batches pay off on more cores.
REASK_THREADS = 8


def entry_of(answer: Answer, recorded: str) -> FollowEntry:
    """The history entry an answer makes: its text, confidence and citation, from the newest of
    the articles that give it (the latest word on it; the first cited when none is dated)."""
    citation = min(answer.citations, key=newest_first) if answer.found and answer.citations \
        else None
    return FollowEntry(recorded, answer.text, answer.score, citation)


def same_answer(one: FollowEntry, other: FollowEntry) -> bool:
    """Whether two entries give the same answer: both not found, or equal normalised texts."""
    return normalize_answer(one.text) == normalize_answer(other.text)


def next_entry(latest: FollowEntry | None, entry: FollowEntry) -> tuple[FollowEntry | None, bool]:
    """What to record of ``entry``, the answer now, after ``latest``: (the entry, whether it
    takes the latest one's place), or (None, False) when nothing changed. A changed answer is a
    new entry; the same answer cited from another article no older than the latest's (a newer
    report repeating it, an edited article) takes the latest's place, so the entry cites the
    newest word on it."""
    if latest is None or not same_answer(latest, entry):
        return entry, False
    if _moved_on(latest.citation, entry.citation):
        return entry, True
    return None, False


def _moved_on(before: Citation | None, after: Citation | None) -> bool:
    if before is None or after is None or before.doc_id == after.doc_id:
        return False
    was, now = parse_day(before.published), parse_day(after.published)
    return was is None or (now is not None and now >= was)


def next_id(follows: Sequence[Followed]) -> str:
    """A short id for a new followed question: "f" and one more than the highest in use."""
    numbers = [int(f.id[1:]) for f in follows if f.id[:1] == "f" and f.id[1:].isdigit()]
    return f"f{max(numbers, default=0) + 1}"


class Following:
    """``NewsQA``'s followed questions: the facade's methods for them and the re-asking after
    each commit. Uses the facade's store, lock and ``_answer``."""

    location: str | Path
    store: DocumentStore
    _lock: threading.RLock
    reader: Reader
    decision: Decision
    # ``NewsQA._answer``: (question, top_k, threshold, filter, history, as of, recency) -> Answer
    _answer: Callable[..., Answer]

    def follow(self, question: str, *, sources: Sequence[str] | None = None,
               top_k: int = 5) -> Followed:
        """Follow ``question``: asked now, its answer is the first entry of its history, and
        asked again after every commit that changes the articles. ``sources`` and ``top_k``
        are ``ask``'s. The same question followed again is the one already followed."""
        question, top_k = validate_question(question), validate_top_k(top_k)
        kept = validate_filter(sources, None, None, True)
        follow = Followed("", question, kept.sources, top_k)
        outcome = self._ask_followed(follow)
        with self._lock, self.store.writing():  # no other writer picks the same id
            with self.store.snapshot():
                follows = self.store.follows()
            same = next((f for f in follows if (f.question, f.sources, f.top_k)
                         == (question, kept.sources, top_k)), None)
            if same is not None:
                return same
            now = utc_now()
            follow = replace(follow, id=next_id(follows), added=now, checked=now,
                             error=outcome if isinstance(outcome, str) else "")
            entry = None if isinstance(outcome, str) else entry_of(outcome, now)
            self.store.add_follow(follow)
            self.store.record_follow(follow, entry)
            self.store.save()
        return replace(follow, latest=entry, changes=int(entry is not None))

    def followed(self) -> list[Followed]:
        """The followed questions in the order followed, each with its latest answer."""
        with self._lock, self.store.snapshot():
            return self.store.follows()

    def unfollow(self, follow_id: str) -> None:
        """Stop following the question ``follow_id`` names; its history goes with it."""
        with self._lock:
            removed = self.store.remove_follow(validate_follow_id(follow_id))
            self.store.save()
        if not removed:
            raise NewsQAError(self._unknown(follow_id))

    def history(self, follow_id: str) -> list[FollowEntry]:
        """The answers the question ``follow_id`` names has had, oldest first."""
        follow_id = validate_follow_id(follow_id)
        with self._lock, self.store.snapshot():
            if not any(f.id == follow_id for f in self.store.follows()):
                raise NewsQAError(self._unknown(follow_id))
            return self.store.follow_history(follow_id)

    def _unknown(self, follow_id: str) -> str:
        return (f"No followed question has the id {clip(repr(follow_id))} in "
                f"{redacted(self.location)} (`newsqa follow list` shows them).")

    def _timeline(self, question: str, hits: Sequence[Hit],
                  documents: Mapping[str, Document]) -> list[Citation]:
        """``Answer.timeline``: the chunks of each article read apart, one question each in a
        batch, so that every article retrieved has its own best answer (the reader may stop
        short of the lower-ranked chunks when it reads them together)."""
        by_article: dict[str, list[Chunk]] = {}
        for hit in hits:
            by_article.setdefault(hit.chunk.doc_id, []).append(hit.chunk)
        found = self.reader.read_batch([question] * len(by_article), list(by_article.values()))
        return compose_timeline(question, [span for spans in found for span in spans],
                                documents, hits, decision=self.decision)

    def _ask_followed(self, follow: Followed) -> Answer | str:
        """The answer to a followed question now, or the error that asking it ended in (a bug
        too, logged with its traceback: no error of one question stops the others or the
        commit that asked)."""
        try:
            return self._answer(follow.question, follow.top_k, None, Filter(follow.sources),
                                (), today(), True)
        except NewsQAError as error:
            return str(error)
        except Exception as error:  # noqa: BLE001 - recorded on the question and logged
            log.exception("Asking the followed question %s again failed", follow.id)
            return f"{type(error).__name__}: {error}"

    def _reask(self) -> list[FollowChange]:
        """Ask every followed question again, after a commit changed the articles, and record
        what changed; the changes, oldest question first. The questions are asked at once
        (``REASK_THREADS``), so that the reader reads them in one batch. A failure to record is
        logged: the commit that asked stands."""
        try:
            with self._lock, self.store.snapshot():
                follows = self.store.follows()
            if not follows:
                return []
            with ThreadPoolExecutor(min(REASK_THREADS, len(follows)),
                                    thread_name_prefix="newsqa-follow") as pool:
                outcomes = list(pool.map(self._ask_followed, follows))
            return self._record_answers(follows, outcomes)
        except NewsQAError as error:
            log.warning("The followed questions could not be asked again: %s", error)
            return []

    def _record_answers(self, follows: Sequence[Followed],
                        outcomes: Sequence[Answer | str]) -> list[FollowChange]:
        changes = []
        now = utc_now()
        with self._lock:  # the first record takes the writer guard, the save gives it back
            for follow, outcome in zip(follows, outcomes):
                checked = replace(follow, checked=now,
                                  error=outcome if isinstance(outcome, str) else "")
                entry, in_place = (None, False) if isinstance(outcome, str) else \
                    next_entry(follow.latest, entry_of(outcome, now))
                if not self.store.record_follow(checked, entry, replace_latest=in_place):
                    continue  # unfollowed meanwhile
                if entry is not None and not in_place:
                    changes.append(FollowChange(
                        replace(checked, latest=entry, changes=follow.changes + 1),
                        follow.latest, entry))
            self.store.save()
        return changes
