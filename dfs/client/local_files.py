"""The client's side of the local file system: which files to upload, where downloads land.

``walk`` turns CLI arguments (files and directories) into ``LocalFile``s with their stored
names: a directory's files are named by their path relative to it, with ``/`` separators.
Symbolic links met inside a directory are skipped and reported unless ``follow_symlinks``
(rsync's default; ``-L`` follows them, with a guard against directory loops); links named
as arguments are followed (as ``cp`` and ``find -H`` do). Unreadable files and directories,
and files that are not regular (fifos, sockets, devices), are skipped and reported;
``storable`` skips and reports those whose stored name the API would refuse
(``name_problem``: not UTF-8, or too long), so that one odd name costs its own file, not
the whole upload.

``local_path``, ``download_targets`` and ``key_targets`` (a bucket's keys) go the other way:
stored names (whatever some uploader chose) become paths under a directory, refusing names
that would escape it and two names that would land on one path; ``existing`` (a download
by id) and ``in_the_way`` (a bucket's keys) tell what already lies at a target and above
it, so that nothing is overwritten unasked and nothing is written through a symbolic link.
Kept apart from the transfer pipelines so that the naming rules are in one place and
testable without a cluster. Standard library (and the pure core: dfs.errors, the API's
name limits) only.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from dfs.client.file_names import is_temp_name
from dfs.errors import FileChanged, InvalidRequest
from dfs.namespace_rules import MAX_KEY_BYTES
from dfs.protocol import MAX_FILE_NAME

T = TypeVar("T")

# a download given a path that ends like this means a directory, as for cp and rsync
DIRECTORY_SUFFIXES = ("/", os.sep)


@dataclass(frozen=True)
class LocalFile:
    """A file to upload: where it is, the name to store it under, its size when listed."""

    path: Path
    name: str
    size: int
    # store its mode and mtime (False for standard input, spooled to a private temp file
    # whose 0600 and "now" say nothing about the data)
    keep_attrs: bool = True
    # its stat when listed, before it is read (the files cache compares it: file_cache)
    st: os.stat_result | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Skipped:
    """A file left out of a transfer, and why (reported; the command exits non-zero)."""

    what: str  # the local path (uploads) or the stored name (downloads)
    reason: str


def _regular(
    path: Path | str,
    follow: bool,
    skipped: list[Skipped] | None,
    dir_fd: int | None = None,
    shown: Path | None = None,
) -> os.stat_result | None:
    """The stat of ``path`` (relative to the folder open at ``dir_fd``, if given; ``shown``:
    its path in reports and errors) when it is a regular file to upload, else None (and
    reported)."""
    reason = ""
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            if not follow:
                raise _Skip("symbolic link not followed (-L follows links)")
            st = os.stat(path, dir_fd=dir_fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Skip("not a regular file")
        # readable now; a later failure is an error
        os.close(os.open(path, os.O_RDONLY, dir_fd=dir_fd))
        return st
    except _Skip as exc:
        reason = str(exc)
    except OSError as exc:
        if skipped is None:
            raise OSError(exc.errno, exc.strerror, str(shown or path)) from None
        reason = exc.strerror or str(exc)
    where = str(shown or path)  # built only for a report: this runs once per file listed
    if skipped is None:
        raise InvalidRequest(f"{where}: {reason}")
    skipped.append(Skipped(where, reason))
    return None


class _Skip(Exception):
    pass


def name_problem(name: str, as_key: bool = False) -> str | None:
    """Why the API would refuse ``name`` as a file's stored name (``as_key``: as an object
    key too), or None: not UTF-8 (a file system name of other bytes, which Python holds as
    lone surrogates), over ``MAX_FILE_NAME`` characters, or as a key over ``MAX_KEY_BYTES``
    bytes. Checked while listing: the API refuses the whole request that carries one."""
    if name.isascii():  # the usual name: no encoding to make
        size = len(name)
    else:
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            return "name is not valid UTF-8 (the API stores names as UTF-8 text)"
    if as_key and size > MAX_KEY_BYTES:
        return f"key would be longer than {MAX_KEY_BYTES} bytes of UTF-8 (the API's limit)"
    if len(name) > MAX_FILE_NAME:
        return f"stored name would be longer than {MAX_FILE_NAME} characters (the API's limit)"
    return None


def same_version(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two stats of a file show the same version of it: the same size, mtime,
    ctime, inode and device (a write moves the mtime, ``touch -r`` or ``cp -p`` putting it
    back moves the ctime, a file replaced by another is another inode)."""
    return (
        a.st_size == b.st_size
        and a.st_mtime_ns == b.st_mtime_ns
        and a.st_ctime_ns == b.st_ctime_ns
        and a.st_ino == b.st_ino
        and a.st_dev == b.st_dev
    )


class NotRegular(OSError):
    """A listed file that is no regular file when it is opened to be read: a FIFO, device or
    socket put at its path since it was listed (``open_to_read``)."""


GONE = (FileNotFoundError, PermissionError, NotRegular)
"""What opening a listed file raises when it was removed, made unreadable, or replaced by
something that is not a regular file, since it was listed: for a pipeline that reports
files and goes on (``UploadPipeline.failed``), that file is left out as one that changed
(``vanished``), not the whole upload."""


def vanished(exc: OSError) -> FileChanged:
    """The ``FileChanged`` reported for a listed file that could not be opened to be read
    (``GONE``), with why."""
    return FileChanged(f"{exc.strerror or exc} when it was read, after it was listed")


def open_to_read(path: Path) -> int:
    """A descriptor of ``path`` to read (``reopen``'s usual step), of a regular file only
    (else ``NotRegular``). Opened without waiting (``O_NONBLOCK``, which a regular file's
    reads ignore): a FIFO put at the path since its listing would wait for a writer, and
    the upload with it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegular(errno.EINVAL, "not a regular file any more", str(path))
    return fd


def reopen(how: Callable[[Path], T], path: Path, droppable: bool) -> T:
    """``how(path)`` (``open_to_read``, or a stat) for a file listed earlier; blocking.
    One removed or made unreadable since (``GONE``) raises ``vanished`` when ``droppable``
    (its pipeline reports it and goes on: ``UploadPipeline.failed``), else that error."""
    try:
        return how(path)
    except GONE as exc:
        if not droppable:
            raise
        raise vanished(exc) from None


def check_unchanged(fd: int, before: os.stat_result) -> None:
    """``FileChanged`` unless the file open at ``fd`` is still the version ``before`` (its
    stat when its scan began); one ``fstat``, blocking."""
    if not same_version(before, os.fstat(fd)):
        raise FileChanged()


def scanned_unchanged(fd: int, before: os.stat_result, path: Path) -> None:
    """``FileChanged`` unless the file open at ``fd`` is still the version ``before`` and
    ``path`` (which the scan opened) still names it; blocking."""
    check_unchanged(fd, before)
    if not same_version(before, os.stat(path)):
        raise FileChanged()


def read_chunk(fd: int, offset: int, size: int) -> bytes:
    """An upload's chunk as it is now; a short read means the file shrank since the scan.

    Not re-hashed here: the node hashes every body against the chunk id from the scan before
    it stores anything (422 otherwise, see ``dfs.client.upload``), so bytes that changed since
    the scan are refused there, and hashing them twice would cost a core's worth of sha256
    per byte.
    """
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise FileChanged()
    return data


def _walk_dir(
    top: Path, prefix: str, follow: bool, skipped: list[Skipped] | None
) -> Iterator[LocalFile]:
    """``top``'s files in sorted order, each folder's files before its sub-folders (as
    ``os.walk`` top-down with sorted names). Each folder is opened once and its entries
    looked at relative to it (``fstatat``, ``openat``): no path walk from the root per file,
    which with pathlib's joins was most of a listing's CPU (a serial step before a backup
    plans anything)."""
    seen: set[tuple[int, int]] = set()
    todo: list[tuple[Path, str]] = [(top, prefix)]
    while todo:
        here, folder = todo.pop()
        listed = _list_dir(here, folder, follow, seen, skipped)
        if listed is None:
            continue
        files, dirs = listed
        yield from files
        todo += reversed(dirs)  # the first sub-folder next


def _list_dir(
    here: Path, folder: str, follow: bool, seen: set[tuple[int, int]], skipped: list[Skipped] | None
) -> tuple[list[LocalFile], list[tuple[Path, str]]] | None:
    """One folder's files to upload and sub-folders to visit (None: unreadable, reported)."""
    try:
        fd = os.open(here, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if skipped is None:
            raise
        skipped.append(Skipped(str(exc.filename or here), exc.strerror or str(exc)))
        return None
    try:
        here_st = os.fstat(fd)
        seen.add((here_st.st_dev, here_st.st_ino))
        names: list[str] = []
        dirs: list[str] = []
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()  # a link to a folder too, as os.walk
                except OSError:
                    is_dir = False
                (dirs if is_dir else names).append(entry.name)
        files = []
        for name in sorted(names):
            full = here / name
            st = _regular(name, follow, skipped, fd, full)
            if st is not None:
                files.append(LocalFile(full, folder + name, st.st_size, st=st))
        return files, [
            (here / d, f"{folder}{d}/")
            for d in sorted(dirs)
            if _visit(fd, d, here / d, follow, seen, skipped)
        ]
    finally:
        os.close(fd)


def _visit(
    fd: int,
    name: str,
    full: Path,
    follow: bool,
    seen: set[tuple[int, int]],
    skipped: list[Skipped] | None,
) -> bool:
    """Whether to walk the sub-folder ``name`` of the folder open at ``fd``: a link to a
    folder only with ``follow`` (else reported), and a followed one only once."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return True  # its listing reports it
    if stat.S_ISLNK(st.st_mode):
        if not follow:
            reason = "symbolic link to a directory not followed (-L follows links)"
            if skipped is None:
                raise InvalidRequest(f"{full}: {reason}")
            skipped.append(Skipped(str(full), reason))
            return False
        try:
            st = os.stat(name, dir_fd=fd)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) not in seen
    return True


def walk(
    paths: Sequence[Path],
    prefix: str = "",
    *,
    follow_symlinks: bool = False,
    skipped: list[Skipped] | None = None,
) -> Iterator[LocalFile]:
    """Files to upload with their stored names; directories recursively, in sorted order.

    What cannot be uploaded (see the module docstring) is appended to ``skipped``; without
    that list it raises instead. Their names are not checked here (``storable`` does, once
    they are final: ``--name`` and ``--prefix`` applied)."""
    for p in paths:
        if p.is_dir():
            yield from _walk_dir(p, prefix, follow_symlinks, skipped)
            continue
        st = _regular(p, True, skipped)  # a link named as an argument is followed
        if st is not None:
            yield LocalFile(p, prefix + p.name, st.st_size, st=st)


def storable(
    files: Iterable[LocalFile], skipped: list[Skipped], as_keys: bool = False
) -> Iterator[LocalFile]:
    """``files`` but those whose stored name the API would refuse (``name_problem``;
    ``as_keys``: as object keys), each reported in ``skipped``: the API refuses the whole
    request that carries one such name, which cost every other file of the upload."""
    for f in files:
        reason = name_problem(f.name, as_keys)
        if reason is None:
            yield f
        else:
            skipped.append(Skipped(str(f.path), reason))


def spool(stream: BinaryIO) -> Path:
    """Copy a stream (stdin) into a private temp file the upload can read twice; the caller
    removes it."""
    fd, name = tempfile.mkstemp(prefix="dfs-stdin-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, 4 << 20)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def local_path(root: Path, name: str) -> Path:
    """Where a stored name lands under ``root``; refuses names that would escape it."""
    return root / _relative(root, name)


def _relative(root: Path, name: str) -> str:
    """A stored name as a relative path ("/"-joined segments, no empty or "." ones), or
    InvalidRequest when it would escape ``root`` (absolute, "..", NUL). Strings, not
    ``PurePosixPath``: a restore maps thousands of names, and pathlib's parsing of each
    was a tenth of its client's time (and read "//a" as an absolute root of its own)."""
    flat = name.replace("\\", "/")
    parts = [x for x in flat.split("/") if x not in ("", ".")]
    if flat.startswith("/") or not parts or any(x == ".." or "\x00" in x for x in parts):
        raise InvalidRequest(f"stored name {name!r} cannot be written safely under {root}")
    return "/".join(parts)


def safe_basename(name: str, fallback: str) -> str:
    """The last component of a stored name, safe to create in a directory."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base:
        return fallback
    return base


NAME_MAX = 255
"""Bytes of one file name at most (Linux's and macOS's file systems): a key's segment may be
longer (a key is up to 1,024 bytes), and its file can then be made by no one."""


def unwritable(rel: str) -> str | None:
    """Why a relative target (``_relative``'s) is not written, or None: a segment longer
    than ``NAME_MAX`` bytes (its ``open`` or ``mkdir`` would fail the whole restore), or a
    last segment of the form of a download's temp file (``is_temp_name``: another download
    beside it could write into that file, or rename it over its own target)."""
    if len(rel) > NAME_MAX // 4 and any(len(os.fsencode(x)) > NAME_MAX for x in rel.split("/")):
        return f"a segment of its name is longer than {NAME_MAX} bytes; not written"
    if is_temp_name(rel):
        return "named as a download's temp file (.NAME.TAG.dfs-part); not written"
    return None


def download_targets(
    root: Path, files: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """(file_id, stored name) pairs -> (file_id, path under ``root``) by their stored
    relative names. A name that cannot be written safely is skipped (reported); two files
    that would land on one path, or one inside the other's, are refused before anything is
    written (InvalidRequest). A file id given twice is downloaded once."""
    out: dict[str, str] = {}
    skipped: list[Skipped] = []
    names: dict[str, str] = {}  # relative path -> the stored name landing there
    for file_id, name in files:
        if file_id in out:
            continue
        try:
            rel = _relative(root, name)
        except InvalidRequest:
            skipped.append(Skipped(name, f"stored name cannot be written safely under {root}"))
            continue
        if (why := unwritable(rel)) is not None:
            skipped.append(Skipped(name, why))
            continue
        if rel in names:
            raise InvalidRequest(
                f"{names[rel]!r} and {name!r} would both be written to {root / rel}; "
                "nothing written"
            )
        names[rel] = name
        out[file_id] = rel
    checked: set[str] = set()  # directories whose chain up to root holds no target
    for rel, name in names.items():
        parent = rel
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if parent in checked:
                break
            if parent in names:
                raise InvalidRequest(
                    f"{name!r} would be written inside {root / parent}, where "
                    f"{names[parent]!r} goes as a file; nothing written"
                )
            checked.add(parent)
    return [(file_id, root / rel) for file_id, rel in out.items()], skipped


def key_targets(
    root: Path, keys: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """(key, its name under ``root``) pairs -> (key, path under ``root``), by the rules of
    ``download_targets``, for a restore of a bucket's keys, which goes on past a key it
    cannot write (each one skipped and reported under its key, the others still written):
    a name that cannot be written safely; every key of two or more that would land on one
    path (``a/b`` and ``a\\b``, ``a/./b``, ``a//b``: which one is meant cannot be told); a
    key whose path other keys need as a directory (``a`` beside ``a/b``)."""
    skipped: list[Skipped] = []
    landing: dict[str, list[str]] = {}  # relative path -> the keys landing there
    for key, name in keys:
        try:
            rel = _relative(root, name)
        except InvalidRequest:
            unsafe = f"cannot be written safely under {root}: '{name}' is an empty or absolute"
            skipped.append(Skipped(key, f"{unsafe} name, or has '..' or NUL"))
            continue
        if (why := unwritable(rel)) is not None:
            skipped.append(Skipped(key, why))
            continue
        landing.setdefault(rel, []).append(key)
    alone: dict[str, str] = {}
    for rel, there in landing.items():
        if len(there) == 1:
            alone[rel] = there[0]
            continue
        for key in there:
            others = ", ".join(f"'{k}'" for k in there if k != key)
            reason = f"would be written to {root / rel}, as {others} would; none of them written"
            skipped.append(Skipped(key, reason))
    needed: dict[str, str] = {}  # a directory some target needs -> a key written in it
    # the deepest first: each directory is claimed by a key nothing lies under (written)
    for rel, key in sorted(alone.items(), key=lambda item: -item[0].count("/")):
        parent = rel
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if parent in needed:
                break
            needed[parent] = key
    out: list[tuple[str, Path]] = []
    for rel, key in alone.items():
        if rel in needed:
            reason = f"{root / rel} must be a directory, for '{needed[rel]}'; not written"
            skipped.append(Skipped(key, reason))
        else:
            out.append((key, root / rel))
    return out, skipped


class Existing(enum.Enum):
    """What already lies at a download's target."""

    NOTHING = "nothing"
    SAME = "same"  # a regular file with exactly these bytes: left as it is
    DIFFERENT = "different"  # replaced only with --force (a link there: the link itself)
    BLOCKED = "blocked"  # a directory at the target, or a non-directory or a link above it


def holds_nothing(root: Path) -> bool:
    """Nothing at ``root``, or a folder with nothing in it (not a link): no file there can
    already hold a download's bytes or stand in its way (blocking: one ``scandir``)."""
    try:
        if os.path.islink(root):
            return False
        with os.scandir(root) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return not os.path.lexists(root)
    except OSError:  # a file, or a folder this process cannot list
        return False


def _blocked_above(path: Path, root: Path | None, clear: set[Path] | None) -> Path | None:
    """The first directory ``path`` needs (below ``root``, or any without a root) where
    something else stands: a file, or under ``root`` a symbolic link, never followed (a link
    to a directory would carry the download out of ``root``; the user's own path to
    ``root`` may hold links). None when there is none; ``clear``: directories already found
    to be a directory or nothing, extended with those found here when none blocks."""
    stop = () if root is None else (root, *root.parents)
    looked: list[Path] = []
    for parent in path.parents:
        if parent in stop or (clear is not None and parent in clear):
            break
        try:
            st = os.stat(parent, follow_symlinks=root is None)
        except (FileNotFoundError, NotADirectoryError):  # a file higher up: met there
            if os.path.lexists(parent):  # a dangling link
                return parent
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            return parent
        looked.append(parent)
    if clear is not None:  # only a whole chain that does not block: what is above is clear too
        clear.update(looked)
    return None


def existing(
    path: Path,
    root: Path | None,
    size: int,
    sha256: str,
    clear: set[Path] | None = None,
) -> Existing:
    """What lies at ``path`` (and, up to ``root``, above it: ``_blocked_above``); blocking
    (hashes a file whose size matches). ``clear``: directories already found not to block,
    shared by the calls of one download so that each is looked at once."""
    if _blocked_above(path, root, clear) is not None:
        return Existing.BLOCKED
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Existing.NOTHING
    except NotADirectoryError:
        return Existing.BLOCKED
    if stat.S_ISDIR(st.st_mode):
        return Existing.BLOCKED
    if stat.S_ISREG(st.st_mode) and st.st_size == size:
        try:
            if hash_file(path)[1] == sha256:
                return Existing.SAME
        except OSError:
            pass
    return Existing.DIFFERENT


def in_the_way(path: Path, root: Path, clear: set[Path] | None = None) -> str | None:
    """Why a restore of a bucket's keys into ``root`` must leave ``path`` alone, or None:
    a directory at it (never written into, nor replaced), or above it a file or a symbolic
    link (``_blocked_above``). A link at ``path`` is no obstacle: the restore replaces it
    as it replaces a file there, never writing through it. Blocking; ``clear`` as for
    ``existing``."""
    above = _blocked_above(path, root, clear)
    if above is not None:
        what = "a symbolic link" if os.path.islink(above) else "not a directory"
        return f"{above} is {what}; not written in it"
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a directory; not replaced"
    return None


def hash_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read in 4 MiB blocks; blocking (call it in a thread)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()
