"""Which version of a model was loaded: the hub commit, or a content hash of its directory.

A store records it beside the model id (:mod:`omniretrieve.store`), so two versions of a model with
one id can be told apart in :meth:`~omniretrieve.store.Store.inspect` and ``omniretrieve info``:

- a model loaded from the Hugging Face cache: the **commit hash** of the snapshot it came from (the
  cache keeps every revision in ``models--ORG--NAME/snapshots/<commit>/``); an id loaded by name is
  looked up in the local cache under the revision asked for (default ``main``), never online;
- a local directory that is not a hub snapshot: ``"sha256:<16 hex>"``, a hash of its configuration
  files (``*.json``, ``*.txt``, ``*.model``, ``*.py``, ``*.yaml``, names and contents, under every
  sub-folder) and of the header of each ``*.safetensors`` file (names, shapes, dtypes and offsets
  of every tensor) — never of the weights themselves, so it costs milliseconds on a model of
  gigabytes. Other weight files (``*.bin``, ``*.onnx``, ...) count by name and size. Weights
  changed in place under the same shapes keep the hash: the store's probe fingerprint catches that
  (:mod:`omniretrieve.store`);
- otherwise (a model built in memory) ``None``.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from pathlib import Path
from typing import Any

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SNAPSHOT = re.compile(r"[\\/]snapshots[\\/]([0-9a-f]{40})(?:[\\/]|$)")
_CONFIG_SUFFIXES = (".json", ".txt", ".model", ".py", ".yaml", ".yml", ".jinja")
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".onnx", ".xml", ".gguf", ".h5", ".msgpack", ".ckpt", ".npz")
_MAX_CONFIG_BYTES = 64 * 1024 * 1024
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_MAX_DEPTH = 3
_CACHE_FILES = ("modules.json", "config.json", "config_sentence_transformers.json")


def is_commit(revision: Any) -> bool:
    """Whether ``revision`` is a full git commit hash (40 lowercase hex digits)."""
    return isinstance(revision, str) and bool(_COMMIT.match(revision))


def model_directory(model: Any, name: str | os.PathLike[str] | None = None) -> Path | None:
    """The local directory a model was loaded from: ``name`` if it is one, else its config's path."""
    if name is not None and Path(os.fspath(name)).is_dir():
        return Path(os.fspath(name))
    modules = getattr(model, "modules", None)
    if not callable(modules):
        return None
    try:
        for module in modules():
            config = getattr(module, "config", None)
            path = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
            if isinstance(path, str) and path and Path(path).is_dir():
                return Path(path)
    except Exception:  # pragma: no cover - defensive: an odd model has no readable config
        return None
    return None


def model_revision(
    model: Any,
    *,
    name: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    cache_folder: str | None = None,
) -> str | None:
    """The version of a loaded model (see the module docstring), or ``None`` when unknown.

    Args:
        model: The loaded ``SentenceTransformer`` or ``CrossEncoder``.
        name: The hub id or directory it was loaded from, if it was loaded by name.
        revision: The revision it was loaded at (a branch, tag or commit), if one was asked for.
        cache_folder: The hub cache it was loaded through, if not the default one.
    """
    directory = model_directory(model, name)
    if directory is not None:
        snapshot = _SNAPSHOT.search(str(directory.resolve()))
        return snapshot.group(1) if snapshot else directory_revision(directory)
    if is_commit(revision):
        return revision
    if name is not None:
        return _cached_commit(os.fspath(name), revision, cache_folder)
    return None


def _cached_commit(repo_id: str, revision: str | None, cache_folder: str | None) -> str | None:
    """The commit the local hub cache holds for ``repo_id`` at ``revision`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with sentence-transformers
        return None
    for filename in _CACHE_FILES:
        try:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_folder, revision=revision)
        except Exception:  # an id the cache cannot hold (e.g. a path that does not exist)
            return None
        if isinstance(found, str):
            snapshot = _SNAPSHOT.search(found)
            if snapshot:
                return snapshot.group(1)
    return None


def directory_revision(directory: str | os.PathLike[str]) -> str:
    """``"sha256:<16 hex>"``: a hash of a model directory's configuration and weight headers.

    See the module docstring for what it reads; files are taken in sorted order, so the hash does
    not depend on the file system.
    """
    root = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(_files(root, 0)):
        relative = path.relative_to(root).as_posix()
        try:
            part = _file_part(path)
        except OSError:
            continue
        if part is None:
            continue
        digest.update(f"{relative}\0{len(part)}\0".encode())
        digest.update(part)
    return f"sha256:{digest.hexdigest()[:16]}"


def _files(folder: Path, depth: int) -> list[Path]:
    found: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and depth < _MAX_DEPTH:
            found.extend(_files(entry, depth + 1))
        elif entry.is_file():
            found.append(entry)
    return found


def _file_part(path: Path) -> bytes | None:
    """What of one file enters the hash (``None``: nothing)."""
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return _safetensors_header(path)
    if name.endswith(_CONFIG_SUFFIXES):
        size = path.stat().st_size
        return path.read_bytes() if size <= _MAX_CONFIG_BYTES else f"size {size}".encode()
    if name.endswith(_WEIGHT_SUFFIXES):
        return f"size {path.stat().st_size}".encode()
    return None


def _safetensors_header(path: Path) -> bytes:
    """The JSON header of a safetensors file: every tensor's name, dtype, shape and offsets."""
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return b"short file " + head
        (length,) = struct.unpack("<Q", head)
        if length > _MAX_HEADER_BYTES:
            return f"header of {length} bytes".encode()
        return head + handle.read(length)


__all__ = ["directory_revision", "is_commit", "model_directory", "model_revision"]
