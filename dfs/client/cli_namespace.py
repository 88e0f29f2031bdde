"""``dfs-client`` commands of the namespace: buckets, keys, versions, sharing, search, usage.

The grammar, one rule for every command: a remote path contains "/" (``bucket/`` or
``bucket/key``; a key ending with "/" is a folder), a bare UUID is a file id (the seed's
commands), and the API URL may come first or from a profile or DFS_API_URL
(``dfs.client.profiles``). ``ls``, ``rm`` and ``url`` of dfs.client.cli hand remote paths to
``list_remote``, ``remove_remote`` and ``url_remote`` here; ``upload`` and ``download`` to
dfs.client.cli_namespace_transfer. Calls go through ``dfs.client.Client``'s namespace methods.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from dfs.client import cli_namespace_output as out
from dfs.client.cli_common import (
    UrlCommand,
    emit,
    json_option,
    make_client,
    run,
    target_options,
)
from dfs.client.cli_output import human_bytes, human_time, printable
from dfs.client.cli_times import Duration, PointInTime
from dfs.client.profiles import Target
from dfs.client.remote_names import parse_remote
from dfs.errors import InvalidRequest, KeyNotFound

if TYPE_CHECKING:  # the library is imported when a command runs (make_client)
    from dfs.client.library import Client


def remote(arg: str) -> tuple[str, str]:
    try:
        return parse_remote(arg)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message) from None


def _bucket(arg: str) -> str:
    return arg.rstrip("/") if "/" not in arg.rstrip("/") else remote(arg)[0]


def call(target: Target, fn: Callable[[Client], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with make_client(target) as client:
            return await fn(client)

    return run(go())


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--versioning", is_flag=True, help="Keep every version of every key.")
@click.option("--public", is_flag=True, help="Anyone may list and read it, without a token.")
@click.argument("bucket")
def mb(as_json: bool, target: Target, versioning: bool, public: bool, bucket: str) -> None:
    """Make a bucket (BUCKET or BUCKET/; names as S3 allows, unique across tenants)."""
    body = call(
        target,
        lambda c: c.make_bucket(
            _bucket(bucket),
            versioning="enabled" if versioning else None,
            access="public-read" if public else None,
        ),
    )
    emit(as_json, body, f"{body['name']}/")


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.argument("bucket")
def rb(as_json: bool, target: Target, bucket: str) -> None:
    """Remove an empty bucket (exit 5 while any key or version remains)."""
    name = _bucket(bucket)
    call(target, lambda c: c.remove_bucket(name))
    emit(as_json, {"removed": name}, f"{name}/")


@click.command(cls=UrlCommand)
@json_option
@target_options
def buckets(as_json: bool, target: Target) -> None:
    """The tenant's buckets and those other tenants shared with it."""

    async def go(c: Client) -> tuple[list[dict[str, Any]], str]:
        return await c.list_buckets(), (await c.api.whoami())["tenant"]

    found, me = call(target, go)
    for b in found:
        emit(as_json, b, out.bucket_line(b, me))


async def _entries_at(
    c: Client, bucket: str, prefix: str, recursive: bool, at: float
) -> AsyncIterator[dict[str, Any]]:
    """The listing of ``prefix`` as it was at ``at``: each key's version then
    (``Client.versions_at``), rolled up into folders at the next "/" unless ``recursive``,
    as the API's delimiter rolls up the current keys."""
    seen: set[str] = set()
    for key, o in sorted((await c.versions_at(bucket, prefix, at)).items()):
        cut = -1 if recursive else key.find("/", len(prefix))
        if cut < 0:
            yield o
        elif key[: cut + 1] not in seen:
            seen.add(key[: cut + 1])
            yield {"prefix": key[: cut + 1]}


@dataclass(frozen=True)
class Listing:
    """What ``ls BUCKET/PREFIX/`` shows: ``long`` lines, ``recursive`` (no folders), every
    version (``versions``) or the keys as they were ``at`` a time, ``as_json``."""

    long: bool = False
    recursive: bool = False
    versions: bool = False
    as_json: bool = False
    at: float | None = None


async def _list(c: Client, path: str, how: Listing) -> None:
    bucket, prefix = remote(path)
    if how.at is None:
        delimiter = "" if how.recursive else "/"
        entries = c.list_all(bucket, prefix, delimiter=delimiter, versions=how.versions)
    else:
        entries = _entries_at(c, bucket, prefix, how.recursive, how.at)
    folders: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    async for e in entries:
        (folders if "prefix" in e else objects).append(e)
    base = prefix if prefix.endswith("/") or not prefix else prefix.rsplit("/", 1)[0] + "/"
    if "/" not in prefix:
        base = ""
    for e in folders + objects:  # folders first, as people expect
        emit(how.as_json, e, out.entry_line(e, "" if how.recursive else base, how.long))


def list_remote(target: Target, path: str, how: Listing) -> None:
    """``ls bucket/prefix/``: folders first, then objects; sizes and dates for people."""
    call(target, lambda c: _list(c, path, how))


async def _remove_folder(c: Client, bucket: str, key: str) -> int:
    """``rm --recursive``: every key under the folder ``key`` (ending in "/"; "" the whole
    bucket). A path without its slash is that key and its folder, as ``download`` and
    ``prune`` take it: never the keys beside it that only start like it (``docs`` is not
    ``docs2/`` nor ``docs-old.txt``), which the API's prefix delete would take too."""
    if not key or key.endswith("/"):
        return await c.remove_prefix(bucket, key)
    n = await c.remove_prefix(bucket, key + "/")
    try:
        await c.object_info(bucket, key)
    except KeyNotFound:
        return n
    await c.remove(bucket, key)
    return n + 1


def remove_remote(
    target: Target, path: str, recursive: bool, version: str | None, as_json: bool
) -> None:
    """``rm bucket/key`` (a delete marker where versioning is on), ``--version`` one
    version for good, ``--recursive`` every key under a folder (``_remove_folder``)."""
    bucket, key = remote(path)
    if recursive:
        if version:
            raise click.UsageError("--version removes one version of one key, not a prefix")
        n = call(target, lambda c: _remove_folder(c, bucket, key))
        emit(as_json, {"deleted": n, "prefix": path}, f"{n} deleted under {path}")
        return
    if not key or (key.endswith("/") and not version):
        raise click.UsageError(f"{path} is a folder: rm --recursive {path}")
    body = call(target, lambda c: c.remove(bucket, key, version=version))
    emit(as_json, body, path)


def url_remote(
    target: Target, path: str, version: str | None, ttl: int | None, as_json: bool
) -> None:
    bucket, key = remote(path)
    body = call(target, lambda c: c.object_url(bucket, key, version=version, ttl=ttl))
    emit(as_json, body, body["download_url"])


def _copy(
    target: Target,
    src: str,
    dst: str,
    recursive: bool,
    version: str | None,
    move: bool,
    as_json: bool,
) -> None:
    """``cp``/``mv``: one key, or (``recursive``, or SRC a folder) the keys of the folder
    SRC. ``-r bucket/NAME`` is the folder ``NAME/``: the API's recursive copy takes every
    key that starts with ``src_key``, so ``docs`` also took ``docs2/b`` (to ``DST/2/b``),
    and the key ``docs`` itself to ``DST/``, a key no download can write."""
    recursive = recursive or remote(src)[1].endswith("/") or not remote(src)[1]
    if recursive and not src.endswith("/"):
        src += "/"
    if recursive and not (dst.endswith("/")):
        dst += "/"
    made = call(target, lambda c: c.copy(src, dst, version=version, recursive=recursive, move=move))
    for o in made:
        emit(as_json, o, f"{o['bucket']}/{o['key']}")


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--recursive", "-r", is_flag=True, help="Every key of the folder SRC (SRC/).")
@click.option("--version", default=None, help="Copy this version of SRC.")
@click.argument("src")
@click.argument("dst")
def cp(
    as_json: bool, target: Target, recursive: bool, version: str | None, src: str, dst: str
) -> None:
    """Copy bucket/key (or a folder bucket/prefix/, recursively) to DST: metadata only, no
    byte is read or written."""
    _copy(target, src, dst, recursive, version, False, as_json)


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--recursive", "-r", is_flag=True, help="Every key of the folder SRC (SRC/).")
@click.argument("src")
@click.argument("dst")
def mv(as_json: bool, target: Target, recursive: bool, src: str, dst: str) -> None:
    """Move (rename) bucket/key or a folder bucket/prefix/ to DST: metadata only."""
    _copy(target, src, dst, recursive, None, True, as_json)


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--version", required=True, help="The version to make current again.")
@click.argument("path")
def restore(as_json: bool, target: Target, version: str, path: str) -> None:
    """Make a copy of an old version of bucket/key its current version (metadata only)."""
    bucket, key = remote(path)
    body = call(target, lambda c: c.restore(bucket, key, version))
    emit(as_json, body, f"{path} {body['version_id']}")


def _pairs(items: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        pairs[k] = v
    return pairs


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--version", default=None, help="Tag this version (default: the current one).")
@click.option("--clear", is_flag=True, help="Remove every tag.")
@click.argument("path")
@click.argument("tags", nargs=-1)
def tag(
    as_json: bool,
    target: Target,
    version: str | None,
    clear: bool,
    path: str,
    tags: tuple[str, ...],
) -> None:
    """Show the tags of bucket/key, or replace them with KEY=VALUE pairs (at most 10)."""
    bucket, key = remote(path)
    if not tags and not clear:
        body = call(target, lambda c: c.object_info(bucket, key, version=version))
    else:
        new = _pairs(tags, "TAGS")
        body = call(target, lambda c: c.update_object(bucket, key, version=version, tags=new))
    text = "\n".join(f"{k}={v}" for k, v in sorted(body["tags"].items()))
    emit(as_json, body, text)


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--public", "mode", flag_value="public-read", help="Anyone, without a token.")
@click.option("--private", "mode", flag_value="private", help="Only the owner (and grants).")
@click.option("--read", "readers", multiple=True, help="Bucket: let TENANT read it.")
@click.option("--write", "writers", multiple=True, help="Bucket: let TENANT read and write.")
@click.option("--revoke", multiple=True, help="Bucket: take TENANT's grant back.")
@click.option("--with", "with_", multiple=True, help="Object: share it with TENANT.")
@click.argument("path")
def share(
    as_json: bool,
    target: Target,
    mode: str | None,
    readers: tuple[str, ...],
    writers: tuple[str, ...],
    revoke: tuple[str, ...],
    with_: tuple[str, ...],
    path: str,
) -> None:
    """Who may read a bucket (bucket/) or an object (bucket/key): public, private, grants
    of read or read-write to other tenants (buckets), sharing with tenants (objects)."""
    bucket, key = remote(path)

    async def go(c: Client) -> dict[str, Any]:
        if key:
            access = "shared" if with_ and mode is None else mode
            shared = list(with_) if with_ else None
            return await c.update_object(bucket, key, access=access, shared_with=shared)
        grants: dict[str, str] | None = None
        if readers or writers or revoke:
            grants = dict((await c.bucket_info(bucket))["grants"])
            grants.update(dict.fromkeys(readers, "read"))
            grants.update(dict.fromkeys(writers, "read-write"))
            for t in revoke:
                grants.pop(t, None)
        return await c.set_bucket(bucket, access=mode, grants=grants)

    body = call(target, go)
    grants = ", ".join(f"{t}:{g}" for t, g in sorted(body.get("grants", {}).items()))
    emit(as_json, body, f"{path} {body['access']} {grants}".rstrip())


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--tag", "tag_", default=None, help="KEY or KEY=VALUE.")
@click.option("--name", default=None, help="A substring of the key.")
@click.option("--type", "type_", default=None, help="Content type, or a prefix (image/).")
@click.option("--min-size", type=int, default=None)
@click.option("--max-size", type=int, default=None)
@click.option("--long", "-l", "long_", is_flag=True)
@click.argument("path")
def find(
    as_json: bool,
    target: Target,
    tag_: str | None,
    name: str | None,
    type_: str | None,
    min_size: int | None,
    max_size: int | None,
    long_: bool,
    path: str,
) -> None:
    """Objects of bucket/[prefix] matching every filter given."""
    bucket, prefix = remote(path)

    async def go(c: Client) -> None:
        token = None
        while True:
            q: dict[str, Any] = {"prefix": prefix, "tag": tag_, "contains": name}
            q["content_type"] = type_
            q.update({"min_size": min_size, "max_size": max_size})
            page = await c.find(bucket, token=token, limit=1000, **q)
            for o in page["objects"]:
                emit(as_json, o, out.entry_line(o, "", long_).rstrip())
            token = page["next_token"]
            if not token:
                return

    call(target, go)


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option("--by", type=click.Choice(["total", "prefix", "type"]), default=None)
@click.argument("path", required=False)
def du(as_json: bool, target: Target, by: str | None, path: str | None) -> None:
    """Storage used: per top-level prefix of bucket/ (default), or --by type, or --by total;
    without a bucket the tenant's totals (--by type per extension)."""
    bucket = remote(path)[0] if path else None
    kind = by or ("prefix" if bucket else "total")
    body = call(target, lambda c: c.usage(bucket, by="" if kind == "total" else kind))
    emit(as_json, body, out.usage_text(body))


@click.command(cls=UrlCommand)
@json_option
@target_options
@click.option(
    "--before",
    type=PointInTime(),
    default=None,
    help="Forget what a newer version had replaced by TIME (ISO 8601 or Unix seconds).",
)
@click.option(
    "--keep-within",
    type=Duration(),
    default=None,
    help="The same, for TIME = now (this machine's clock) - DURATION (30d, 1w12h; s, m for "
    "minutes, h, d, w).",
)
@click.option("--dry-run", "-n", is_flag=True, help="Only list what would be removed.")
@click.argument("path")
def prune(
    as_json: bool,
    target: Target,
    before: float | None,
    keep_within: float | None,
    dry_run: bool,
    path: str,
) -> None:
    """Forget old snapshots of bucket/[prefix/] (or of one key and its folder): remove
    the versions and delete markers that a newer version had replaced by a time, so
    download --at that time or any later one still finds everything (the current objects
    always stay). The chunks no version needs any more are freed by the API's next garbage
    collection."""
    if (before is None) == (keep_within is None):
        raise click.UsageError("give one of --before TIME and --keep-within DURATION")
    if before is None:
        before = time.time() - (keep_within or 0.0)
    bucket, key = remote(path)
    verb = "would remove" if dry_run else "removed"

    def removed(o: dict[str, Any]) -> None:  # as it goes: a prune cut short says what it did
        what = "delete marker" if o["is_delete_marker"] else human_bytes(o["size"])
        name = printable(f"{bucket}/{o['key']}")
        emit(as_json, o, f"{verb}\t{name}\t{printable(o['version_id'])}\t{what}")

    report = call(
        target, lambda c: c.prune(bucket, key, before, dry_run=dry_run, on_removed=removed)
    )
    summary = {
        "dry_run": dry_run,
        "before": before,
        "versions": report.versions,
        "delete_markers": report.markers,
        "bytes": report.bytes,
        "kept": report.kept,
    }
    text = (
        f"{verb} {out.count(report.versions, 'version')} ({human_bytes(report.bytes)}) and "
        f"{out.count(report.markers, 'delete marker')} under {printable(path)}, replaced by "
        f"{human_time(before)}; {report.kept} versions and markers kept"
    )
    emit(as_json, summary, text)


COMMANDS = (mb, rb, buckets, cp, mv, restore, tag, share, find, du, prune)
