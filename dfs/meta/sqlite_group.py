"""Group commit for the SQLite store's short writes (a PutObject's new file and its version,
a key's link: ``put_object``, which ``POST /objects-link`` sends many of at once).

Every write transaction ends in an fsync (``synchronous=FULL``), and the store runs them one
after another on its one worker thread: with several PutObjects at once, each waits for the
fsyncs of those before it. ``GroupCommit`` runs the writes queued while a commit is in
progress together, in one ``BEGIN IMMEDIATE`` … ``COMMIT``, each in a ``SAVEPOINT`` of its
own: a write that raises is rolled back to its savepoint alone (and its error is its
caller's), the others commit. No write waits for company: the first one starts a commit at
once, and only writes that arrive while it runs join the next one (never a timer).

What each caller gets is unchanged: its result (or error) is delivered only after the COMMIT
that made its write durable, its checks ran inside the write lock on the state left by the
writes before it (one transaction, so the same serial order as separate transactions), and a
COMMIT that fails fails every write of the group (none of it is stored). The group's
writes add their usage counters to ``usage`` (``dfs.meta.sqlite_usage_deltas``), written
once per row just before the COMMIT; a write rolled back takes its additions with it.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

from dfs.errors import Conflict, Unavailable
from dfs.meta.sqlite_codec import Labels
from dfs.meta.sqlite_usage_deltas import UsageDeltas

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]  # (True, result) or (False, the exception it raised)

MAX_GROUP = 64
"""Writes in one transaction at most (bounds how long the write lock is held)."""


class GroupCommit:
    """Queues writes on the event loop and commits them in groups on the store's worker
    (``run``'s ``submit``: the store's ``_run``, which maps a failed COMMIT's errors)."""

    def __init__(self, labels: Labels) -> None:
        self._labels = labels
        # the usage sums of the group being committed (its writes add to them), written just
        # before its COMMIT: each counter row once per group (``dfs.meta.sqlite_usage_deltas``)
        self.usage: UsageDeltas | None = None
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None  # the drain running, held while it runs
        self.commits = 0  # transactions committed (a group each)

    async def run(
        self,
        submit: Callable[[Callable[[], list[Outcome]]], Awaitable[list[Outcome]]],
        db: Callable[[], sqlite3.Connection],
        fn: Callable[[sqlite3.Connection], T],
    ) -> T:
        """``fn`` (no transaction of its own) in the next group commit; its result once
        that commit is durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.append((fn, fut))
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:  # none running here
            self._task = loop.create_task(self._drain(submit, db))
        return await fut

    async def _drain(
        self,
        submit: Callable[[Callable[[], list[Outcome]]], Awaitable[list[Outcome]]],
        db: Callable[[], sqlite3.Connection],
    ) -> None:
        here = asyncio.get_running_loop()
        while self._queue:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            # not cancelled, and not left by a loop torn down with its drain
            group = [(fn, fut) for fn, fut in group if not fut.done() and fut.get_loop() is here]
            if not group:
                continue
            fns = [fn for fn, _ in group]
            try:
                outcomes = await submit(functools.partial(self._commit, db, fns))
            except asyncio.CancelledError:  # the loop is closing: so are the callers
                for _, fut in group + self._queue:
                    fut.cancel()
                self._queue = []
                raise
            except RuntimeError as exc:  # the store's worker was shut down (closed)
                outcomes = [(False, Unavailable(f"sqlite metadata store: {exc}"))] * len(group)
            except Exception as exc:  # the COMMIT (or BEGIN) failed: every write
                outcomes = [(False, exc)] * len(group)
            for (_, fut), (ok, value) in zip(group, outcomes, strict=True):
                if fut.done():  # its caller was cancelled; the write stands or not as any
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(_translated(value))

    def _commit(self, conn: Callable[[], sqlite3.Connection], fns: list[Op]) -> list[Outcome]:
        """On the worker: the writes in one transaction, each in its own savepoint."""
        out: list[Outcome] = []
        db = conn()
        db.execute("BEGIN IMMEDIATE")
        group = UsageDeltas()
        try:
            for fn in fns:
                out.append(self._one(db, fn, group))
            group.flush(db)
            db.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._labels.settle(committed=False)
            raise
        finally:
            self.usage = None
        self._labels.settle(committed=True)
        self.commits += 1
        return out

    def _one(self, db: sqlite3.Connection, fn: Op, group: UsageDeltas) -> Outcome:
        """``fn`` in its own savepoint; its usage sums join the group's once it succeeds."""
        mark = self._labels.mark()
        self.usage = UsageDeltas()  # what ``fn`` adds to (the store's ops read it here)
        db.execute("SAVEPOINT grouped")
        try:
            value = fn(db)
        except Exception as exc:
            self._labels.forget_since(mark)  # its labels' ids were rolled back with it
            if not db.in_transaction:  # SQLite ended the whole group (a full disk, I/O):
                raise  # every member fails with this error, not a missing savepoint's
            db.execute("ROLLBACK TO grouped")
            db.execute("RELEASE grouped")
            return False, exc  # and its usage sums are dropped with ``self.usage``
        db.execute("RELEASE grouped")
        group.merge(self.usage)
        return True, value


def _translated(exc: BaseException) -> BaseException:
    """A write's own sqlite3 error as the store's ``_run`` reports one."""
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(f"metadata write conflicts: {exc}")
    if isinstance(exc, sqlite3.OperationalError):
        return Unavailable(f"sqlite metadata store: {exc}")
    return exc
