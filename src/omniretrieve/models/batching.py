"""Run a batch through a model; when it fails, run each input alone.

One bad input (an image the processor chokes on, a clip the model cannot read) must never cost the
other inputs of its batch. :func:`batch_then_isolate` runs the whole batch first (the fast path) and
only on failure retries the inputs one by one, so each failing input gets its own error and every
other input its output. The embedder and the reranker both score their batches through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def batch_then_isolate(
    inputs: Sequence[T], call: Callable[[list[T]], Iterable[R]], *, what: str = "inputs"
) -> list[R | Exception]:
    """One output (or the exception that stood for it) per input, in input order.

    Args:
        inputs: what to run, in order.
        call: runs a list of inputs and returns one output per input, in the same order (a 2-D
            array counts as one row per input). A call that returns another number of outputs
            counts as failed.
        what: how the inputs are named in the log line written when a batch fails.

    Returns:
        For each input, its output, or the ``Exception`` raised when that input ran alone (for a
        batch of one, the batch's own exception). A ``BaseException`` that is not an
        ``Exception`` (``KeyboardInterrupt``) propagates.
    """
    batch = list(inputs)
    if not batch:
        return []
    try:
        return list(_run(call, batch))
    except Exception as exc:
        if len(batch) == 1:
            return [exc]
        logger.debug("a batch of %d %s failed (%r); retrying one by one", len(batch), what, exc)
    outcomes: list[R | Exception] = []
    for item in batch:
        try:
            (output,) = _run(call, [item])
        except Exception as exc:
            outcomes.append(exc)
            continue
        outcomes.append(output)
    return outcomes


def _run(call: Callable[[list[T]], Iterable[R]], batch: list[T]) -> list[R]:
    outputs = list(call(batch))
    if len(outputs) != len(batch):
        raise ValueError(f"the model returned {len(outputs)} outputs for {len(batch)} inputs")
    return outputs


__all__ = ["batch_then_isolate"]
