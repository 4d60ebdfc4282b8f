"""Encoding on several devices through sentence-transformers' own multi-process pool (:class:`EncodePool`).

``SentenceTransformerEmbedder(..., devices=["cuda:0", "cuda:1"])`` hands every model call to a
pool started with ``SentenceTransformer.start_multi_process_pool(target_devices=devices)``: one
``spawn``-started process per device, each holding the model (shared from this process's memory)
and running the processor and the model on its device. A call's inputs are cut into one chunk per
device, so each device gets an equal share; the library returns the outputs in input order.

The pool starts on the first model call (seconds: each process imports torch and the library),
once, and is stopped by :meth:`EncodePool.close`: the embedder's ``close()``, ``close_workers()``
(``Store.close``), leaving its ``with`` block, its garbage collection, or the interpreter's exit.

Failures keep the embedder's per-item isolation: a chunk that raises in a worker makes the whole
call raise (after every chunk came back), and the embedder retries the call's inputs one by one
(:func:`~omniretrieve.models.batch_then_isolate`). A worker that dies (a crash, the OOM killer)
makes the library raise; the pool is then stopped and a fresh one starts on the next call.

Starting the pool moves the model to the CPU in this process (the library shares its weights with
the workers from there).
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from omniretrieve.errors import InvalidInputError

logger = logging.getLogger(__name__)


def parse_devices(devices: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``devices`` as a tuple of device names (``"cuda:0,cuda:1"`` splits on commas), or ``None``.

    Raises:
        InvalidInputError: an empty list, or a name torch does not take as a device.
    """
    if devices is None:
        return None
    names = devices.split(",") if isinstance(devices, str) else list(devices)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise InvalidInputError(
            f"devices={devices!r}", "give one or more device names, e.g. ['cuda:0', 'cuda:1']"
        )
    import torch

    out = []
    for name in names:
        try:
            out.append(str(torch.device(name.strip())))
        except (RuntimeError, ValueError) as exc:
            raise InvalidInputError(
                f"devices={devices!r}", f"{name.strip()!r} is not a torch device ({exc})"
            ) from None
    return tuple(out)


class EncodePool:
    """A sentence-transformers multi-process pool over ``devices``, started lazily, stopped once.

    Args:
        model: The ``SentenceTransformer`` (moved to the CPU when the pool starts).
        devices: Two or more device names (the same name may repeat, e.g. ``["cpu", "cpu"]``).
    """

    def __init__(self, model: Any, devices: Sequence[str]) -> None:
        self._model = model
        self.devices = tuple(devices)
        self._lock = threading.Lock()
        self._pool: dict[str, Any] | None = None
        self._finalizer: weakref.finalize | None = None
        self.starts = 0
        """How many times a pool was started (1 unless a worker died)."""

    @property
    def processes(self) -> list[Any]:
        """The worker processes of the running pool (empty when none runs)."""
        return list(self._pool["processes"]) if self._pool is not None else []

    def encode(self, encode: Callable[..., Any], inputs: list[Any], **kwargs: Any) -> Any:
        """``encode(inputs, pool=..., chunk_size=..., **kwargs)`` on the pool (started if needed).

        ``encode`` is the model's ``encode_query`` or ``encode_document``.
        """
        pool = self._started()
        chunk = max(1, math.ceil(len(inputs) / len(self.devices)))
        try:
            return encode(inputs, pool=pool, chunk_size=chunk, **kwargs)
        except Exception:
            if any(not p.is_alive() for p in pool["processes"]):
                logger.warning("an encoding process died; the pool restarts on the next call")
                self.close()
            raise

    def _started(self) -> dict[str, Any]:
        with self._lock:
            if self._pool is None:
                pool = self._model.start_multi_process_pool(target_devices=list(self.devices))
                self._pool = pool
                self.starts += 1
                self._finalizer = weakref.finalize(self, _stop, type(self._model), pool)
            return self._pool

    def close(self) -> None:
        """Stop the worker processes (idempotent; a later call starts a new pool)."""
        with self._lock:
            finalizer, self._finalizer, self._pool = self._finalizer, None, None
        if finalizer is not None:
            finalizer()  # runs _stop once, then detaches


def _stop(model_class: Any, pool: dict[str, Any]) -> None:
    try:
        model_class.stop_multi_process_pool(pool)
    except Exception as exc:  # pragma: no cover - at interpreter exit the queues may be gone
        logger.debug("stopping the encoding pool: %r", exc)


__all__ = ["EncodePool", "parse_devices"]
