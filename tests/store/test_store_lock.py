"""The directory lock of an embedded store: one writer at a time, named when it refuses another."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from omniretrieve.errors import StoreLockedError
from omniretrieve.store import LOCK_FILE, Store
from omniretrieve.store._lock import HOLDER_FILE, DirectoryLock
from omniretrieve.testing.fakes import FakeEmbedder

DIM = 4

HOLDER = textwrap.dedent(
    """
    import sys, time
    from omniretrieve.store import Store
    from omniretrieve.testing.fakes import FakeEmbedder
    store = Store(FakeEmbedder(dimension={dim}), path=sys.argv[1])
    store.add(["held"])
    print("OPEN", flush=True)
    time.sleep(600)
    """
).format(dim=DIM)


def test_a_second_store_in_this_process_is_refused_and_named(tmp_path: Path) -> None:
    with Store(FakeEmbedder(dimension=DIM), path=tmp_path / "s"):
        with pytest.raises(StoreLockedError) as info:
            Store(FakeEmbedder(dimension=DIM), path=tmp_path / "." / "s")  # the same directory
        assert info.value.holder == str(os.getpid())
        assert f"held by process {os.getpid()}" in str(info.value)
    with Store(FakeEmbedder(dimension=DIM), path=tmp_path / "s") as store:  # released on close
        assert [r.status for r in store.add(["x"])] == ["added"]


def test_two_lock_objects_exclude_each_other_and_clean_up(tmp_path: Path) -> None:
    first, second = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    first.acquire()
    assert (tmp_path / HOLDER_FILE).read_text().strip() == str(os.getpid())
    with pytest.raises(StoreLockedError, match=str(os.getpid())):
        second.acquire()
    first.release()
    first.release()  # idempotent
    assert not (tmp_path / HOLDER_FILE).exists() and (tmp_path / LOCK_FILE).exists()
    second.acquire()
    second.release()


def test_release_from_another_thread(tmp_path: Path) -> None:
    store = Store(FakeEmbedder(dimension=DIM), path=tmp_path / "s")
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(timeout=60)
    with Store(FakeEmbedder(dimension=DIM), path=tmp_path / "s"):
        pass


def test_the_holder_process_is_named_and_its_lock_dies_with_it(tmp_path: Path) -> None:
    path = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().strip()
        assert line == "OPEN", f"the holder did not start: {line!r} {proc.communicate(timeout=60)}"
        with pytest.raises(StoreLockedError) as info:
            Store(FakeEmbedder(dimension=DIM), path=path)
        assert info.value.holder == str(proc.pid) and f"held by process {proc.pid}" in str(info.value)
        proc.kill()  # SIGKILL: no clean-up runs; the OS drops the lock with the process
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    with Store(FakeEmbedder(dimension=DIM), path=path) as store:  # no stale lock left behind
        assert store.count() == 1
