"""The exclusive lock an embedded store holds on its directory while it is open.

Two processes writing one Chroma directory silently lose vectors, so an embedded store takes an
exclusive lock on ``DIR/omniretrieve.lock`` (:mod:`filelock`: ``flock`` on Unix, ``LockFileEx`` on
Windows) and keeps it until it is closed. A second store on the same directory, in another process
or in this one, is refused with :class:`~omniretrieve.errors.StoreLockedError`, which names the
holder's process id: the holder writes it to ``DIR/omniretrieve.lock.pid`` (a side file, since the
lock file itself belongs to :mod:`filelock`).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import filelock

from omniretrieve.errors import StoreLockedError

logger = logging.getLogger(__name__)

LOCK_FILE = "omniretrieve.lock"
"""The lock file an embedded store holds in its directory."""

HOLDER_FILE = "omniretrieve.lock.pid"
"""The side file where the lock's holder writes its process id (removed on release)."""


class DirectoryLock:
    """An exclusive lock on ``directory/omniretrieve.lock``, held from :meth:`acquire` to :meth:`release`.

    Args:
        directory: The embedded store's directory (it must exist).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_FILE
        # thread_local=False: the store may be closed from another thread than the one that opened it.
        self._lock = filelock.FileLock(str(self.path), timeout=0, thread_local=False)

    def acquire(self) -> None:
        """Take the lock now, without waiting.

        Raises:
            StoreLockedError: another process, or another lock object of this process, holds it.
        """
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise StoreLockedError(str(self.directory), self.holder()) from None
        self._write_holder()

    def release(self) -> None:
        """Give the lock up (the lock file stays in place). Idempotent."""
        if not self._lock.is_locked:
            return
        try:
            (self.directory / HOLDER_FILE).unlink(missing_ok=True)
        except OSError:  # pragma: no cover - best effort: a stale pid only misleads the message
            logger.debug("could not remove %s", self.directory / HOLDER_FILE, exc_info=True)
        self._lock.release(force=True)

    def holder(self) -> str | None:
        """The process id the holder wrote, when it can be read."""
        try:
            text = (self.directory / HOLDER_FILE).read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        return text.strip()[:32] or None

    def _write_holder(self) -> None:
        target = self.directory / HOLDER_FILE
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
            os.replace(tmp, target)
        except OSError:  # pragma: no cover - the lock holds; only the message loses the pid
            logger.debug("could not write %s", target, exc_info=True)
            tmp.unlink(missing_ok=True)


__all__ = ["HOLDER_FILE", "LOCK_FILE", "DirectoryLock"]
