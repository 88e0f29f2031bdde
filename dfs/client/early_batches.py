"""An upload's first batches planned by the command line before it loads the client library.

``dfs-client upload DIR`` spent its first ~0.2 s on one core: aiohttp and the library
imported, then ``/whoami`` asked and the files cache loaded; only then was the first batch
scanned and planned, while the API and the machine's other core had nothing to do. A
re-backup of a tree the cache knows (nothing to read, nothing to send) is bound by the API's
work on its ``/init-uploads`` (bench/README.md), so those idle tenths were a tenth of it.
Here a thread of its own (``EarlyBatches``), started with the listing
(``dfs.client.early_listing``) beside those imports, does what the pipeline
(``dfs.client.upload``) does first, with the standard library's ``http.client``:

1. ``GET /whoami`` (the tenant names the files cache), then the cache loaded;
2. the listing's files taken in order while each small one is in the cache unchanged (its
   scan is the cached one: nothing is read), the small ones in batches, a big one only
   numbered (the pipeline sends it on its own path). The first file the cache does not
   know ends the taking: a file read here would contend with the imports for the
   interpreter, each of its system calls waiting for it again (measured: a first backup's
   batch of 125 files, 4 MB, took ~0.1 s to read and hash beside them);
3. each batch's ``/init-uploads`` sent, two at a time as the pipeline's (``PLANS_AT_ONCE``,
   on a connection each), with the bodies the pipeline would send
   (``batch_scan.upload_entry``; no node excluded), its plans and packs kept.

The pipeline ``take``s them once it runs: from then on the thread takes no file (it waits
only for a batch being formed, never for an answer; the answers in flight are read after)
and the pipeline has the cache, every batch taken (one planned goes on, once its answer is
in, as one the pipeline planned: its packs sent, finalized, remembered; one that was not,
the pipeline plans), the big files among them, and the rest of the listing with the
number of files taken before it, so every file keeps its place.

It stops quietly at anything unexpected, and the pipeline plans what is left as without it:
an answer that is not 2xx (nothing of that request was done), a connection that fails (as
for a plan request the API client sends again, ``dfs.transport.api_client``: a batch whose
answer was lost is pending uploads left to garbage collection, or files its plan committed).
A listing that fails is raised to the pipeline after the files listed before.

The command line imports this module: nothing here may load aiohttp (tests/unit/test_layering.py).
"""

from __future__ import annotations

import collections
import http.client
import itertools
import logging
import ssl
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dfs import protocol
from dfs.chunking import ChunkerProfile
from dfs.client.batch_scan import (
    BATCH_FILES,
    CACHED_BATCH_FILES,
    PLANS_AT_ONCE,
    SMALL_FILE,
    Batch,
    Scanned,
    cacheable,
    upload_entry,
)
from dfs.client.file_cache import FileCache, cache_path
from dfs.client.local_files import LocalFile
from dfs.jsonio import json_bytes, parse_json

log = logging.getLogger("dfs.client")

FIRST_FILES = BATCH_FILES // 4
"""Files of the first batch sent early, then twice as many each, up to CACHED_BATCH_FILES (the
pipeline starts from ``batch_scan.FIRST_BATCH_FILES``: its first scan must end soon, where
here the API is idle meanwhile in any case)."""
EARLY_FILES = 8 * BATCH_FILES
"""Files taken early at most (a fresh API plans a batch of 500 in ~25 ms here, so the thread
may be done before the imports are): bounds what a command that fails before its pipeline
runs plans (its cleanup stops the thread)."""
TIMEOUT = 120.0
"""Seconds a request may wait for its answer (the client library's read timeout)."""


@dataclass
class PlannedBatch:
    """A batch taken early: its files with their places, their (cached) scans, and the
    ``/init-uploads`` answer's plans (in the same order) and packs, there once ``answered``
    is set; ``plans`` None then when it was not planned (the pipeline plans it)."""

    batch: Batch
    scans: list[Scanned]
    plans: list[dict[str, Any]] | None = None
    packs: list[dict[str, Any]] = field(default_factory=list)
    answered: threading.Event = field(default_factory=threading.Event)


@dataclass
class Taken:
    """What the pipeline takes over: the files cache (None when the thread did not load
    one), the batches taken, the big files taken (with their places), and the rest of the
    listing, whose first file is the ``count``-th."""

    cache: FileCache | None
    planned: list[PlannedBatch]
    rest: Iterable[LocalFile]
    count: int = 0
    big: list[tuple[int, LocalFile]] = field(default_factory=list)


class EarlyBatches:
    """The thread described in the module docstring, over ``files`` (the listing, read by
    no one else until ``take``) for the API at ``url`` with ``token``; files over
    ``small_file`` bytes are big."""

    def __init__(
        self,
        url: str,
        token: str | None,
        files: Iterable[LocalFile],
        profile: ChunkerProfile,
        small_file: int = SMALL_FILE,
    ) -> None:
        self._url = urlsplit(url)
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers[protocol.AUTHORIZATION] = f"Bearer {token}"
        self._files: Iterator[LocalFile] = iter(files)
        self._listing_error: BaseException | None = None
        self._chunker = str(profile)
        self._small_file = small_file
        self._taken = threading.Event()  # ``take`` (or ``stop``) was called: no more files
        self._taking = threading.Lock()  # held while the thread takes files (or the cache)
        self._ahead: LocalFile | None = None  # listed, in no batch yet (``_next_batch``)
        self.cache: FileCache | None = None
        self.planned: list[PlannedBatch] = []
        self.big: list[tuple[int, LocalFile]] = []
        self._count = 0  # files in the batches taken (their big files among them)
        self._thread = threading.Thread(target=self._run, name="dfs-early-batches", daemon=True)
        self._thread.start()

    def take(self) -> Taken:
        """Stop the thread's taking of files and hand everything over: the listing goes on
        with the file listed after the last batch, then the rest (and the listing's error,
        if it failed, after them); each batch's plans are there once it is ``answered``."""
        with self._taking:  # a batch being formed is finished first
            self._taken.set()
        ahead = [self._ahead] if self._ahead is not None else []
        rest = itertools.chain(ahead, self._rest())
        return Taken(self.cache, self.planned, rest, self._count, self.big)

    def finished(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end on its own (the listing's
        end, a file it leaves to the pipeline, ``EARLY_FILES``, a failure): whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """End the thread, after the requests in flight are answered."""
        with self._taking:
            self._taken.set()
        self._thread.join()

    def _rest(self) -> Iterator[LocalFile]:
        if self._listing_error is not None:
            raise self._listing_error
        yield from self._files

    def _run(self) -> None:
        conns = [self._connect() for _ in range(PLANS_AT_ONCE)]
        try:
            self._plan_all(conns)
        except (OSError, http.client.HTTPException, ValueError, LookupError, TypeError) as exc:
            log.debug("early batches stopped: %s", exc)
        finally:
            for conn in conns:
                conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._url.hostname or "", self._url.port
        if self._url.scheme == "https":
            context = ssl.create_default_context()  # as dfs.transport.tls.verified_context
            context.set_alpn_protocols(["http/1.1"])
            return http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=context)
        return http.client.HTTPConnection(host, port, timeout=TIMEOUT)

    def _send(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
    ) -> None:
        data = None if body is None else json_bytes(body)
        conn.request(method, self._url.path + path, body=data, headers=self._headers)

    def _answer(self, conn: http.client.HTTPConnection) -> Any:
        """The JSON answer of the request sent on ``conn``; None if it is not a 2xx."""
        resp = conn.getresponse()
        raw = resp.read()
        if not 200 <= resp.status < 300:
            log.debug("early batches stopped: answered %d", resp.status)
            return None
        return parse_json(raw)

    def _plan_all(self, conns: list[http.client.HTTPConnection]) -> None:
        try:
            self._send(conns[0], "GET", protocol.WHOAMI)
            who = self._answer(conns[0])
            if not isinstance(who, dict):
                return
            tenant = str(who["tenant"])
            with self._taking:
                if not self._taken.is_set():
                    path = cache_path(self._url.geturl(), tenant, "", self._chunker)
                    self.cache = FileCache.load(path)
            self._plan_batches(conns)
        finally:  # every batch is answered, whatever happened: its plans, or None
            for batch in self.planned:
                batch.answered.set()

    def _plan_batches(self, conns: list[http.client.HTTPConnection]) -> None:
        flight: collections.deque[tuple[http.client.HTTPConnection, PlannedBatch]]
        flight = collections.deque()
        most, more, ok = FIRST_FILES, True, True
        try:
            while more and ok and self._count < EARLY_FILES:
                if len(flight) == len(conns):
                    ok = self._planned(*flight.popleft())
                    continue
                with self._taking:
                    if self._taken.is_set():
                        return
                    taken, scans, more = self._next_batch(most)
                    batch = self._keep(taken, scans)
                if batch is not None:
                    conn = next(c for c in conns if all(c is not f for f, _b in flight))
                    self._send(conn, "POST", protocol.INIT_UPLOADS, self._body(batch))
                    flight.append((conn, batch))
                    most = min(2 * most, CACHED_BATCH_FILES)
        finally:  # every request sent is answered, while the pipeline takes over
            while flight:
                conn, batch = flight.popleft()
                try:
                    self._planned(conn, batch)
                except (OSError, http.client.HTTPException, ValueError, LookupError) as exc:
                    log.debug("early batches: a plan's answer was lost: %s", exc)

    def _planned(self, conn: http.client.HTTPConnection, batch: PlannedBatch) -> bool:
        """Read the answer to ``batch``'s plan request into it (then ``answered``): whether
        it holds its plans."""
        try:
            answer = self._answer(conn)
            if not isinstance(answer, dict):
                return False
            plans, packs = answer["uploads"], answer.get("packs") or []
            if not (isinstance(plans, list) and len(plans) == len(batch.batch)):
                return False
            if not isinstance(packs, list):
                return False
            batch.plans, batch.packs = plans, packs
            return True
        finally:
            batch.answered.set()

    def _body(self, batch: PlannedBatch) -> dict[str, Any]:
        return {
            "files": [
                upload_entry(f.name, s.scan, self._chunker, f.st if f.keep_attrs else None)
                for (_n, f), s in zip(batch.batch, batch.scans, strict=True)
            ]
        }

    def _next_file(self) -> LocalFile | None:
        if self._ahead is not None:
            f, self._ahead = self._ahead, None
            return f
        try:
            return next(self._files, None)
        except BaseException as exc:  # the listing failed: the pipeline raises it after
            self._listing_error = exc
            return None

    def _next_batch(self, most: int) -> tuple[list[LocalFile], list[Scanned], bool]:
        """The listing's next files in order: up to ``most`` small ones the cache knows
        unchanged, with their cached scans (none is read, so their bytes bound nothing:
        ``batch_scan.batches``), and the big ones among them; and whether more may follow
        (not after a small file the cache does not know, left for the pipeline:
        ``_ahead``)."""
        assert self.cache is not None
        taken: list[LocalFile] = []
        scans: list[Scanned] = []
        while len(scans) < most:
            f = self._next_file()
            if f is None:
                return taken, scans, False
            if f.size <= self._small_file:
                found = self.cache.lookup(f.path, f.st) if f.st and cacheable(f) else None
                if found is None:
                    self._ahead = f  # read by the pipeline
                    return taken, scans, False
                scans.append(Scanned(found, cached=True))
            taken.append(f)
        return taken, scans, True

    def _keep(self, taken: list[LocalFile], scans: list[Scanned]) -> PlannedBatch | None:
        """``taken`` handed over: numbered from ``_count``, its big files to ``big``, its
        small ones (if any: ``scans``) as a batch (its plan asked for by the caller)."""
        first = self._count
        numbered = [(first + i, f) for i, f in enumerate(taken)]
        self.big += [(n, f) for n, f in numbered if f.size > self._small_file]
        self._count += len(taken)
        if not scans:
            return None
        batch = PlannedBatch([(n, f) for n, f in numbered if f.size <= self._small_file], scans)
        self.planned.append(batch)
        return batch
