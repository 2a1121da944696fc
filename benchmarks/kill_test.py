"""Kill tests at volume: SIGKILL writers of the index at random points, then check what survived.

    nice python benchmarks/kill_test.py [--kills 240] [--seed 0] [--reader-share 0.5]

Each round starts one writer process and kills it (SIGKILL) after a random number of its
"saving"/"saved" reports plus a random delay, so kills land both inside ``Store.save()`` (FAISS
file, SQLite commit, tidy) and between saves. The parent then opens the index and checks:

- it opens at all (``Store.open(create=False)``);
- every document the writer reported as committed ("saved") is there, every document it reported
  deleted and saved is gone, and nothing that was never saved appeared ("phantom");
- FAISS holds exactly one vector per chunk row, and every document has all its chunks;
- every article's key names exactly one version of it, the one ``find_by_key`` returns, and
  replacing left every article there: a replacement the writer was saving when killed left the
  old version or the new one, never both and never neither;
- a few committed documents are found by their own chunk vector with a score of ~1.0.

In about half of the rounds a reader process opens the index while the writer works and runs
``snapshot()`` searches, with the same consistency checks (one version of each article among the
documents it lists, found by its key), until after the writer's death (it is killed only once
the reader is searching); every exception or inconsistency it sees is a reader error.

Operations, written the way the facade writes (``qa/pipeline.py``):

- indexing: ``Store.add`` + ``save()`` in batches under ``store.writing()``, as ``NewsQA.add``;
- deleting: ``Store.delete`` + ``save()`` one document at a time, as ``NewsQA.delete``;
- replacing: a new version (another text, the same key) of a few committed documents a save,
  each ``Store.delete`` of the old version then ``Store.add`` of the new one, under
  ``store.writing()``, as ``NewsQA.add`` replaces an edited article;
- the feed refresher: each poll adds its new items (``add`` + ``save()``), then records the poll
  (``record_poll`` with the items' keys + ``save()``), as ``NewsQA.refresh_feeds`` does. After a
  kill, every item key the feed remembers must name a committed document (else a later poll
  would never fetch a lost item again), and the feed's last success is never older than a poll
  it reported saved.

Writers use the Store directly with random 384-d unit vectors, not ``NewsQA.add`` with the real
embedder: crash safety lives in ``qa/store/local/store.py``, and loading and running the embedder in
each of hundreds of writers would make a round take seconds instead of a fraction of one. Processes
are forked from a ``forkserver`` that has imported ``qa.store.local.store`` once, for the same
reason (importing ``qa.store.local.store`` alone takes ~1.7 s on a busy 2-core machine).

Exit status 1 if any check failed; a broken index is kept as ``broken-<round>`` in the work
folder (which is then kept and printed) and a fresh one is used for the remaining rounds.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import multiprocessing
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Callable

import numpy as np

from qa.store.base import utc_now
from qa.store.local.store import Store
from qa.types import Chunk, Document, document_key

EMBEDDER = "kill-test/random"
DIMENSION = 384  # all-MiniLM-L6-v2's, as in tests/store/test_local_store.py
SEED_DOCS = 80  # in the index before the first kill
MIN_DOCS, MAX_DOCS = 40, 400  # keep the index small: below MIN only index, above MAX only delete
MAX_SAVES = 8  # a writer is killed within its first MAX_SAVES saves
INDEX_BATCH = (1, 4)  # documents per indexing save
FEED = "http://feeds.example/kill-test.xml"  # subscribed in the seed index; never fetched
SAMPLED = 5  # committed documents looked up by their own vector after each kill
TIMEOUT_S = 60.0  # a writer or reader silent this long has hung
AFTER_KILL_S = 0.05  # the reader keeps searching this long after the writer died
FAILURES = ("unopenable", "lost", "resurrected", "phantom", "vec!=rows", "key", "search",
            "feed state", "writer err", "reader err")
OPERATIONS = ("indexing", "deleting", "replacing", "feed refresher")


# --------------------------------------------------------------------- documents both sides derive


def _seed(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")


def key_of(doc_id: str) -> str:
    """The key of a document: that of the article it is a version of (``<article>~<version>``)."""
    return document_key(external_id=doc_id.partition("~")[0])


def make_doc(doc_id: str) -> tuple[Document, list[Chunk]]:
    """A small document of 1-3 paragraph chunks, the same in writer and checker; its key names
    the article it is a version of."""
    text, spans = "", []
    for j in range(1 + _seed(doc_id) % 3):
        if text:
            text += "\n\n"
        start = len(text)
        text += " ".join([f"Paragraph {j} of document {doc_id}."] * 4)
        spans.append((start, len(text)))
    doc = Document(doc_id, text, title=f"Document {doc_id}", source="kill-test",
                   external_id=doc_id.partition("~")[0], key=key_of(doc_id))
    return doc, [Chunk(doc_id, start, end, text[start:end]) for start, end in spans]


def chunk_vectors(doc_id: str, count: int) -> np.ndarray:
    """Random unit vectors for a document's chunks, seeded by its id (so the checker knows them)."""
    vectors = np.random.default_rng(_seed(doc_id)).standard_normal((count, DIMENSION))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def add_doc(store: Store, doc_id: str) -> None:
    doc, chunks = make_doc(doc_id)
    store.add(doc, chunks, chunk_vectors(doc_id, len(chunks)))


def open_store(path: Path) -> Store:
    return Store.open(path, embedder_name=EMBEDDER, dimension=DIMENSION, create=False)


def finds_itself(store: Store, doc_id: str, j: int) -> str | None:
    """None when chunk ``j`` of ``doc_id`` is the top hit for its own vector at score ~1.0."""
    _, chunks = make_doc(doc_id)
    hits = store.search(chunk_vectors(doc_id, j + 1)[j], 1)
    if not hits:
        return f"{doc_id}#{j}: no hit"
    found = store.chunks_by_ids([hits[0][0]])[0]
    if found != chunks[j] or abs(hits[0][1] - 1.0) > 1e-4:
        return f"{doc_id}#{j}: top hit {found.doc_id}@{found.start} score {hits[0][1]:.4f}"
    return None


def chunk_rows(store: Store) -> int:
    return sum(1 for _ in store.iter_chunks())


def key_problem(store: Store, ids: list[str], looked_up: list[str]) -> str | None:
    """None when each article among ``ids`` (the documents listed) has one version, and its key
    names each of ``looked_up``."""
    twice = sorted(key for key, n in Counter(map(key_of, ids)).items() if n > 1)
    if twice:
        return f"two versions of {len(twice)} article(s): {', '.join(twice[:5])}"
    wrong = [doc_id for doc_id in looked_up if store.find_by_key(key_of(doc_id)) != doc_id]
    return f"not found by their key: {', '.join(wrong[:5])}" if wrong else None


# --------------------------------------------------------------------- processes (forked)


def _report_error(conn: Connection, error: Exception) -> None:
    conn.send_bytes(f"error {type(error).__name__}: {error}".encode()[:3000])


def announced_save(store: Store, conn: Connection, announce: str) -> None:
    """``store.save()`` between a "saving ..." and a "saved" report, which tell the parent what
    was committed (a kill between the two leaves it pending: maybe committed, maybe not)."""
    conn.send_bytes(f"saving {announce}".encode())
    store.save()
    conn.send_bytes(b"saved")


def add_batch(store: Store, conn: Connection, ids: list[str]) -> None:
    """Add these documents and commit them in one announced save ("+id": added)."""
    for doc_id in ids:
        add_doc(store, doc_id)
    announced_save(store, conn, " ".join(f"+{doc_id}" for doc_id in ids))


def index_writer(path: str, conn: Connection, round_: int, seed: int) -> None:
    """Add documents in small batches under the writer lock, as ``NewsQA.add`` does."""
    rng = random.Random(seed)
    try:
        store = open_store(Path(path))
        with store.writing():
            for batch in range(10_000):
                add_batch(store, conn, [f"r{round_}-b{batch}-d{i}"
                                        for i in range(rng.randint(*INDEX_BATCH))])
    except Exception as error:  # reported to the parent, which counts it as a failure
        _report_error(conn, error)
        raise SystemExit(1) from None


def delete_writer(path: str, conn: Connection, round_: int, seed: int) -> None:
    """Delete committed documents one save each, as ``NewsQA.delete`` (``sources delete``)."""
    del round_  # same signature as index_writer
    try:
        store = open_store(Path(path))
        ids = [d.id for d in store.documents()]
        random.Random(seed).shuffle(ids)
        for doc_id in ids:
            if not store.delete(doc_id):
                raise RuntimeError(f"{doc_id} was listed but could not be deleted")
            announced_save(store, conn, f"-{doc_id}")
    except Exception as error:
        _report_error(conn, error)
        raise SystemExit(1) from None


def replace_writer(path: str, conn: Connection, round_: int, seed: int) -> None:
    """Replace committed documents by a new version each, a few a save under the writer lock,
    as ``NewsQA.add`` replaces an edited article: the old version, found by its key, deleted
    and the new one added in one commit."""
    rng = random.Random(seed)
    try:
        store = open_store(Path(path))
        with store.writing():
            ids = [d.id for d in store.documents()]
            rng.shuffle(ids)
            versions = itertools.count()
            while ids:
                size = rng.randint(*INDEX_BATCH)
                batch, ids = ids[:size], ids[size:]
                changes = []
                for old in batch:
                    new = f"{old.partition('~')[0]}~{round_}-{next(versions)}"
                    if store.find_by_key(key_of(old)) != old or not store.delete(old):
                        raise RuntimeError(f"{old} was listed but its key does not name it")
                    add_doc(store, new)
                    changes += [f"-{old}", f"+{new}"]
                announced_save(store, conn, " ".join(changes))
    except Exception as error:
        _report_error(conn, error)
        raise SystemExit(1) from None


def feed_writer(path: str, conn: Connection, round_: int, seed: int) -> None:
    """Commit polls of the feed as ``NewsQA.refresh_feeds`` does: the new items' documents in
    one save, then the poll's record (item keys, last success) in another."""
    rng = random.Random(seed)
    try:
        store = open_store(Path(path))
        with store.writing():
            feed = next(f for f in store.feeds() if f.url == FEED)
            for poll in range(10_000):
                ids = [f"r{round_}-p{poll}-item{i}" for i in range(rng.randint(*INDEX_BATCH))]
                add_batch(store, conn, ids)
                now = utc_now()
                feed = replace(feed, last_poll=now, last_success=now)
                if not store.record_poll(feed, seen=ids):
                    raise RuntimeError(f"{FEED} is no longer subscribed")
                announced_save(store, conn, f"poll {now}")
    except Exception as error:
        _report_error(conn, error)
        raise SystemExit(1) from None


def reader(path: str, conn: Connection, seed: int) -> None:
    """Search snapshots until told to stop; report queries, errors and the first error."""
    rng = random.Random(seed)
    try:
        store = open_store(Path(path))
    except Exception as error:
        _report_error(conn, error)
        return
    conn.send_bytes(b"ready")
    queries, errors, first = 0, 0, ""
    while not conn.poll():
        try:
            with store.snapshot():
                docs = store.documents()
                vectors, rows = len(store), chunk_rows(store)
                problem = f"{vectors} vectors vs {rows} chunk rows" if vectors != rows else None
                if docs and problem is None:
                    info = rng.choice(docs)
                    problem = (key_problem(store, [d.id for d in docs], [info.id])
                               or finds_itself(store, info.id, rng.randrange(info.chunks)))
            if problem:
                raise AssertionError(problem)
        except Exception as error:  # every failure a reader sees is what we count
            errors += 1
            first = first or f"{type(error).__name__}: {error}"
        queries += 1
        time.sleep(0.002)
    conn.send_bytes(f"result {queries} {errors} {first}".encode()[:3000])


# --------------------------------------------------------------------- one round in the parent


@dataclass
class Round:
    """What one writer reported before it was killed, and what the checks found."""

    op: str
    added: set[str] = field(default_factory=set)  # committed ("saved")
    deleted: set[str] = field(default_factory=set)
    # announced by "saving", never "saved": added ("+id") and deleted ("-id")
    pending_added: set[str] = field(default_factory=set)
    pending_deleted: set[str] = field(default_factory=set)
    polled: str = ""  # the feed refresher's last poll reported saved
    pending_poll: str = ""  # and the one it was saving when killed
    last_event: str = ""
    last_at: float = 0.0
    writer_error: str = ""
    killed: bool = False
    reader_queries: int = 0
    reader_errors: int = 0
    failures: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, message: str, phases: dict[str, list[float]]) -> int:
        """Record one message from the writer, and in ``phases`` how long the step before it
        took (a save before "saved", the add/delete work before "saving"); 1 for a save event."""
        kind, _, rest = message.partition(" ")
        if kind == "saving" and rest.startswith("poll "):
            self.pending_poll = rest.split()[1]
        elif kind == "saving":
            self.pending_added = {word[1:] for word in rest.split() if word[0] == "+"}
            self.pending_deleted = {word[1:] for word in rest.split() if word[0] == "-"}
        elif kind == "saved":
            self.added |= self.pending_added
            self.deleted |= self.pending_deleted
            self.pending_added, self.pending_deleted = set(), set()
            self.polled = self.pending_poll or self.polled
            self.pending_poll = ""
        else:
            self.writer_error = rest
            return 0
        now = time.perf_counter()
        if self.last_event:
            phases[kind].append(now - self.last_at)
        self.last_event, self.last_at = kind, now
        return 1

    @property
    def pending(self) -> set[str]:
        return self.pending_added | self.pending_deleted

    def fail(self, kind: str, detail: str) -> None:
        self.failures[kind] += 1
        self.notes.append(f"{kind}: {detail}")


def start(ctx: ForkServerContext, target: Callable[..., None], path: Path, *args: int
          ) -> tuple[multiprocessing.Process, Connection]:
    """Fork ``target(path, conn, *args)``; the parent keeps the other end of ``conn``."""
    here, there = ctx.Pipe()
    process = ctx.Process(target=target, args=(str(path), there, *args), daemon=True)
    process.start()
    there.close()
    return process, here


def receive(conn: Connection) -> str | None:
    """The next message, or None when the process ended or stayed silent for TIMEOUT_S."""
    try:
        return conn.recv_bytes().decode(errors="replace") if conn.poll(TIMEOUT_S) else None
    except EOFError:
        return None


def stop(process: multiprocessing.Process, conn: Connection) -> None:
    process.kill()
    process.join()
    conn.close()


def run_round(ctx: ForkServerContext, path: Path, op: str, round_: int, rng: random.Random,
              with_reader: bool, phases: dict[str, list[float]]) -> Round:
    """Start a writer (and maybe a reader, which opens the index while the writer works), and
    kill the writer at a random point once the reader is searching."""
    result = Round(op)
    readers = [start(ctx, reader, path, rng.getrandbits(32))] if with_reader else []
    writers = {"indexing": index_writer, "deleting": delete_writer, "replacing": replace_writer,
               "feed refresher": feed_writer}
    writer, conn = start(ctx, writers[op], path, round_, rng.getrandbits(32))
    target, events = rng.randint(1, 2 * MAX_SAVES), 0
    while events < target:
        message = receive(conn)
        if message is None:
            break
        events += result.note(message, phases)
    if readers and (ready := receive(readers[0][1])) != "ready":
        result.reader_errors = 1
        result.fail("reader err", f"reader did not open the index: {ready}")
        stop(*readers.pop())
    if events == target:
        step = phases["saved" if result.last_event == "saving" else "saving"][-50:]
        typical = statistics.median(step) if step else 0.01
        time.sleep(rng.uniform(0, 2 * typical))  # in the step now running, or just after it
        writer.kill()
        result.killed = True
    else:
        writer.kill()  # it hung or died on its own
    writer.join()
    result.killed = result.killed and writer.exitcode == -9
    while conn.poll(0):  # what it reported before it died (its save times are not known)
        try:
            result.note(conn.recv_bytes().decode(errors="replace"), {"saving": [], "saved": []})
        except EOFError:
            break
    conn.close()
    if result.writer_error or not result.killed:
        result.fail("writer err", result.writer_error or f"writer exited {writer.exitcode}")
    for reader_proc, reader_conn in readers:
        time.sleep(AFTER_KILL_S)
        reader_conn.send_bytes(b"stop")
        answer = receive(reader_conn)
        if answer is None:
            result.reader_errors = 1
            result.fail("reader err", "the reader hung or died")
        else:
            _, queries, errors, first = answer.split(" ", 3)
            result.reader_queries, result.reader_errors = int(queries), int(errors)
            if result.reader_errors:
                result.fail("reader err", f"{errors} of {queries} queries failed, first: {first}")
        stop(reader_proc, reader_conn)
    return result


def check(path: Path, result: Round, before: set[str], gone: set[str],
          rng: random.Random) -> set[str] | None:
    """Check the index after a kill; the documents now present, or None if it did not open.
    ``gone``: every document deleted so far, which a feed may still remember (as it should: a
    deleted item is not fetched again)."""
    try:
        store = open_store(path)
    except Exception as error:
        result.fail("unopenable", f"{type(error).__name__}: {error}")
        return None
    with store:
        present = {d.id: d for d in store.documents()}
        ids = set(present)
        lost = (before | result.added) - result.deleted - result.pending - ids
        resurrected = ids & result.deleted
        phantom = ids - before - result.added - result.pending
        for kind, docs in (("lost", lost), ("resurrected", resurrected), ("phantom", phantom)):
            if docs:
                result.fail(kind, f"{len(docs)} doc(s): {', '.join(sorted(docs)[:5])}")
        vectors, rows = len(store), chunk_rows(store)
        partial = [d.id for d in present.values() if d.chunks != len(make_doc(d.id)[1])]
        if vectors != rows or partial:
            result.fail("vec!=rows", f"{vectors} vectors, {rows} chunk rows, "
                                     f"documents missing chunks: {partial[:5]}")
        problem = key_problem(store, sorted(ids), sorted(ids))
        if result.op == "replacing" and problem is None:  # it changes versions, not articles
            left = sorted({key_of(d) for d in before} - {key_of(d) for d in ids})
            problem = f"no version of {len(left)} article(s): {', '.join(left[:5])}" if left \
                else None
        if problem:
            result.fail("key", problem)
        feed = next(f for f in store.feeds() if f.url == FEED)
        remembered = store.feed_items(FEED)
        orphans = remembered - ids - gone - before  # gone this round: the 'lost' check's
        if orphans:
            result.fail("feed state", f"{len(orphans)} remembered item(s) with no document: "
                                      f"{', '.join(sorted(orphans)[:5])}")
        if result.polled and feed.last_success < result.polled:
            result.fail("feed state", f"last success {feed.last_success!r} is older than the "
                                      f"saved poll {result.polled!r}")
        fresh = sorted(ids & result.added)
        sample = rng.sample(fresh, min(2, len(fresh)))
        older = sorted(ids & before - set(sample))
        sample += rng.sample(older, min(SAMPLED - len(sample), len(older)))
        for doc_id in sample:
            try:
                problem = finds_itself(store, doc_id, rng.randrange(present[doc_id].chunks))
            except Exception as error:
                problem = f"{doc_id}: {type(error).__name__}: {error}"
            if problem:
                result.fail("search", problem)
    return ids


def seed_index(path: Path, count: int, prefix: str) -> set[str]:
    """A fresh index with ``count`` committed documents."""
    ids = {f"{prefix}-d{i}" for i in range(count)}
    with Store.open(path, embedder_name=EMBEDDER, dimension=DIMENSION) as store:
        for doc_id in sorted(ids):
            add_doc(store, doc_id)
        store.add_feed(FEED)
        store.save()
    return ids


# --------------------------------------------------------------------- report


def print_table(rounds: list[Round], wall: float) -> None:
    head = (f"{'operation':<15}{'kills':>6}{'in save':>8}{'between':>8}"
            + "".join(f"{name:>12}" for name in FAILURES)
            + f"{'reads':>8}{'queries':>9}{'time s':>8}")
    print(head)
    print("-" * len(head))
    for op in (*OPERATIONS, "total"):
        mine = [r for r in rounds if op == "total" or r.op == op]
        kills = [r for r in mine if r.killed]
        failed: Counter = Counter()
        for r in mine:
            failed.update({kind: 1 for kind in r.failures if kind != "reader err"})
        failed["reader err"] = sum(r.reader_errors for r in mine)
        seconds = wall if op == "total" else sum(r.seconds for r in mine)
        print(f"{op:<15}{len(kills):>6}"
              f"{sum(r.last_event == 'saving' for r in kills):>8}"
              f"{sum(r.last_event != 'saving' for r in kills):>8}"
              + "".join(f"{failed[name]:>12}" for name in FAILURES)
              + f"{sum(r.reader_queries > 0 for r in mine):>8}"
              f"{sum(r.reader_queries for r in mine):>9}{seconds:>8.1f}")
    print("in save: killed after a 'saving' report and before its 'saved'; between: after a "
          "'saved' (in the add/delete work).\nFailure columns count kills with that failure, "
          "except reader err (failed reader queries); reads: rounds with a concurrent reader.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=240, help="writers to kill (default 240)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reader-share", type=float, default=0.5,
                    help="share of rounds with a concurrent reader (default 0.5)")
    args = ap.parse_args()
    if args.kills < 1 or not 0.0 <= args.reader_share <= 1.0:
        ap.error("--kills must be >= 1 and --reader-share in [0, 1]")

    ctx = multiprocessing.get_context("forkserver")
    # Writers and readers fork with qa.store.local.store loaded. By name: Python 3.11 ignores
    # "__main__" here.
    ctx.set_forkserver_preload(["qa.store.local.store"])
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill-test-"))
    path = work / "index"
    present = seed_index(path, SEED_DOCS, "seed")
    gone: set[str] = set()
    rounds: list[Round] = []
    # seconds per step, per operation: the pause before a kill is drawn from the same
    # operation's steps (a delete's save takes milliseconds, an indexing one far longer)
    phases: dict[str, dict[str, list[float]]] = {
        op: {"saving": [], "saved": []} for op in OPERATIONS}
    started = time.perf_counter()
    while sum(r.killed for r in rounds) < args.kills and len(rounds) < 2 * args.kills:
        if len(present) < MIN_DOCS:
            op = "indexing"
        elif len(present) > MAX_DOCS:
            op = "deleting"
        else:
            op = rng.choice(OPERATIONS)
        t = time.perf_counter()
        result = run_round(ctx, path, op, len(rounds), rng, rng.random() < args.reader_share,
                           phases[op])
        after = check(path, result, present, gone, rng)
        if after is None:  # keep the evidence, go on with a fresh index
            path.rename(work / f"broken-{len(rounds)}")
            after = seed_index(path, SEED_DOCS, f"fresh{len(rounds)}")
        gone |= present - after
        present = after
        result.seconds = time.perf_counter() - t
        for note in result.notes:
            when = f"after '{result.last_event}'" if result.last_event else "before any save"
            print(f"round {len(rounds)} ({op}, {when}): {note}")
        rounds.append(result)
        if len(rounds) % 40 == 0:
            print(f"... {sum(r.killed for r in rounds)} kills, {len(present)} documents indexed",
                  flush=True)
    wall = time.perf_counter() - started
    print()
    print_table(rounds, wall)
    failed = any(r.failures for r in rounds)
    if failed:
        print(f"FAILED; index and any broken copies kept in {work}")
    else:
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
