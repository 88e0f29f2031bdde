"""What ListObjects (version 1) and ListObjectVersions share: pages that start after a
marker key (the namespace's ``start_after``) and end with a marker the client sends back.

A marker that is itself a common prefix of the listing (the ``NextMarker`` of a page that
ended on a rolled-up "folder") resumes after every key under it: the namespace rolls those
keys into that one prefix again, so the page asks for one entry more and drops it.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from dfs.meta.namespace import ObjectListing, ObjectVersion
from dfs.s3.errors import S3Error

MAX_KEYS = 1000
Entry = ObjectVersion | str  # a version (or delete marker), or a common prefix
Lister = Callable[[str, int], Awaitable[ObjectListing]]  # (start_after, limit) -> page


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    truncated: bool

    @property
    def next_marker(self) -> str:
        if not self.entries:
            return ""
        last = self.entries[-1]
        return last if isinstance(last, str) else last.key


def entry_key(e: Entry) -> str:
    return e if isinstance(e, str) else e.key


def merged(listing: ObjectListing) -> list[Entry]:
    """A page's objects and common prefixes in key order (versions of a key keep theirs)."""
    prefixes: list[Entry] = list(listing.common_prefixes)
    objects: list[Entry] = list(listing.objects)
    return list(heapq.merge(objects, prefixes, key=entry_key))


def rolls_up(marker: str, prefix: str, delimiter: str) -> bool:
    """Is ``marker`` a common prefix of this listing (prefix + ... + delimiter)?"""
    if not delimiter or not marker.startswith(prefix):
        return False
    at = marker.find(delimiter, len(prefix))
    return at >= 0 and at + len(delimiter) == len(marker)


async def page_after(lister: Lister, marker: str, prefix: str, delimiter: str, limit: int) -> Page:
    """Up to ``limit`` entries after ``marker``; ``truncated`` when more follow."""
    skip = rolls_up(marker, prefix, delimiter)
    got = await lister(marker, max(limit, 1) + (1 if skip else 0))
    entries = merged(got)
    if skip and entries and entries[0] == marker:
        entries = entries[1:]
    truncated = got.next_token is not None or len(entries) > limit
    return Page(entries[:limit], truncated)


def max_keys(raw: str | None) -> int:
    if raw is None:
        return MAX_KEYS
    if not raw.isascii() or not raw.isdigit():
        raise S3Error("InvalidArgument", 400, "max-keys must be a non-negative integer")
    return min(int(raw), MAX_KEYS)


def encoder(encoding: str | None) -> Callable[[str], str]:
    """``encoding-type=url``: keys and prefixes percent-encoded in the answer."""
    if encoding is None:
        return lambda text: text
    if encoding != "url":
        raise S3Error("InvalidArgument", 400, "Invalid Encoding Method specified in Request")
    return lambda text: quote(text, safe="/")
