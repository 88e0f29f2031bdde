"""The directories a restore writes its files into, opened one name at a time from its root,
never through a symbolic link: the restore then creates, links and renames its files
relative to those descriptors, never by a path the kernel resolves again.

A restore looks at what stands at and above every target before it writes anything
(``dfs.client.local_files.existing`` and ``in_the_way``: a symbolic link or a file above a
target refuses it). Those checks run once; a restore of many files takes seconds to hours,
and every write by path resolved its directories anew. Someone who may write in the target
tree could replace a checked directory by a symbolic link meanwhile, and the files meant for
it were created (as the user running the restore, root perhaps) wherever the link pointed.
Now ``TargetDirs.open`` walks from the root (opened as the user named it: the root itself
may be a link) one component at a time with ``O_NOFOLLOW | O_DIRECTORY``, making missing
ones with ``mkdirat``; a link or a file met on the way is a Conflict. What a descriptor names
stays the directory it opened, whatever is renamed or replaced above it afterwards.

Without a root (a caller of the library that gave targets alone) each parent is made and
opened by its path: the writes that follow still never resolve it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os

from dfs.errors import Conflict, IntegrityError

_DIR = os.O_RDONLY | os.O_DIRECTORY
_WALK = _DIR | os.O_NOFOLLOW


class TargetDirs:
    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root = None if root is None else os.path.normpath(root)
        self._root_made = False  # made (if missing) by the first open, not by every one

    def open(self, parent: str) -> int:
        """A new descriptor of the directory ``parent`` (made if missing), which the caller
        closes. Conflict if a symbolic link or something not a directory stands at or above
        it below the root."""
        if self.root is None:
            os.makedirs(parent, exist_ok=True)
            return os.open(parent, _DIR)
        rel = os.path.relpath(os.path.normpath(parent), self.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
            raise IntegrityError(f"{parent} is not under the restore's folder {self.root}")
        if not self._root_made:  # the user's folder, by its path (a link too)
            os.makedirs(self.root, exist_ok=True)
            self._root_made = True
        fd = os.open(self.root, _DIR)
        if rel == os.curdir:
            return fd
        try:
            for name in rel.split(os.sep):
                fd = _step(fd, name, parent)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def open_async(self, parent: str) -> int:
        """``open`` on a worker thread; a descriptor it opens for a caller cancelled
        meanwhile is closed, not left open."""
        opening = asyncio.get_running_loop().run_in_executor(None, self.open, parent)
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise


def _close_opened(opening: asyncio.Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


def _step(fd: int, name: str, parent: str) -> int:
    """The directory ``name`` in the one open at ``fd`` (made if missing), never through a
    link; ``fd`` is closed once the step is taken."""
    try:
        try:
            child = os.open(name, _WALK, dir_fd=fd)
        except FileNotFoundError:
            # made meanwhile (another writer thread): opened as it stands
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=fd)
            child = os.open(name, _WALK, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Conflict(
                f"a symbolic link or a file stands at {name!r} above {parent}; not written in"
                " it (it was a directory, or nothing, when the restore began)"
            ) from None
        raise
    os.close(fd)
    return child
