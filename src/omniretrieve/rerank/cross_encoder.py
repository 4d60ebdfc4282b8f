"""Reranking with any sentence-transformers ``CrossEncoder``: :class:`CrossEncoderReranker`."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omniretrieve.errors import InvalidInputError, OmniretrieveError, RerankError, require
from omniretrieve.models import (
    audio_sampling_rate,
    batch_then_isolate,
    crop_audio_to_window,
    instance_model_id,
    load_kwargs,
    refuse_loading_options,
    truncate_text,
    video_num_frames,
)
from omniretrieve.rerank.protocol import RerankResult, UnsupportedPolicy
from omniretrieve.rerank.rules import (
    check_policy,
    check_query,
    check_top_n,
    order_results,
    split_supported,
    supports_modality,
)
from omniretrieve.types import (
    MODALITIES,
    Audio,
    Image,
    ItemInput,
    Modality,
    NormalizedItem,
    Text,
    Video,
    describe,
    modality_of,
)

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

    from omniretrieve.media import MediaLoader

logger = logging.getLogger(__name__)


class CrossEncoderReranker:
    """Rerank any mix of items with a sentence-transformers ``CrossEncoder``.

    Setup::

        pip install omniretrieve            # add [image], [audio], [video] for media candidates

    Instantiate (a hub id, a local directory, or a loaded ``CrossEncoder``)::

        reranker = CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L6-v2")   # text only
        reranker = CrossEncoderReranker("path/to/multimodal-reranker", device="cuda", dtype="float16")
        reranker.modalities          # e.g. frozenset({'text', 'image'})

    Rerank (the query may be text, an image or a combined item, whatever the model reads)::

        results = reranker.rerank("a red circle", candidates, top_n=10)
        best = [candidates[r.index] for r in results if r.ok]

    How it works: candidates are normalised (:func:`~omniretrieve.types.as_item`), the
    ``unsupported`` policy is applied, then candidates are grouped by modality (one modality
    combination per model batch) and scored ``batch_size`` at a time: each chunk's media is loaded
    through ``media`` (a :class:`~omniretrieve.media.MediaLoader`, so only that chunk is held in
    memory), and the (query, candidate) pairs go to ``CrossEncoder.predict``. If the model fails on a
    chunk, its candidates are retried one by one so that only the failing ones get an error result
    (:func:`~omniretrieve.models.batch_then_isolate`, shared with the embedder, as are the processor
    lookups for the audio sampling rate and the number of video frames, see :mod:`omniretrieve.models`).
    The query is loaded once per call; a query that will not load raises.

    Which modalities the model reads comes from the ``CrossEncoder``: a model with a chat template
    (``"message"`` modality) pairs any of its modalities, and combined items of them; a model
    without one (a classic BERT-style cross-encoder) reads text pairs only.

    Args:
        model: a hub id or local directory (loaded with ``CrossEncoder``; a local directory is
            loaded with ``local_files_only``, so nothing is downloaded), or a loaded ``CrossEncoder``.
        device: torch device for loading (``"cpu"``, ``"cuda"``...); None lets the library choose.
            ``device``, ``dtype`` and ``trust_remote_code`` apply only when ``model`` is loaded here:
            given with a loaded ``CrossEncoder`` they are refused.
        dtype: weights dtype for loading (a ``torch.dtype`` or a name such as ``"float16"``,
            ``"bfloat16"``, ``"auto"``); None keeps the library default.
        trust_remote_code: allow model code from the model's repository (only for repositories
            you trust).
        batch_size: (query, candidate) pairs per model batch, and candidates whose media is held in
            memory at once.
        media: the loader (and so the policy: allowed roots, URLs, size caps) for media candidates
            and queries; default ``MediaLoader()`` with the default policy.
        unsupported: the policy for candidates of a modality the model cannot read:
            ``"keep_last"``, ``"drop"`` or ``"error"`` (see the module docstring).
        max_length: longest token sequence per pair (longer ones are truncated, the chat template's
            suffix kept); None keeps the model's own limit.
        show_progress: show the library's progress bars while scoring.

    Raises:
        InvalidInputError: a bad parameter, loading options with a loaded model, a model that could
            not be loaded, or a model with more than one output (reranking needs one score per pair).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | CrossEncoder,
        *,
        device: str | None = None,
        dtype: Any = None,
        trust_remote_code: bool = False,
        batch_size: int = 16,
        media: MediaLoader | None = None,
        unsupported: UnsupportedPolicy = "keep_last",
        max_length: int | None = None,
        show_progress: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size={batch_size!r}", "batch_size must be a positive int")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        ):
            raise InvalidInputError(f"max_length={max_length!r}", "max_length must be None or a positive int")
        check_policy(unsupported)

        if isinstance(model, (str, os.PathLike)):
            self.model: Any = _load_cross_encoder(
                model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, max_length=max_length
            )
            self.model_id = os.fspath(model)
        else:
            if not (callable(getattr(model, "predict", None)) and hasattr(model, "modalities")):
                raise InvalidInputError(
                    describe(model),
                    "model must be a hub id, a local directory or a sentence-transformers CrossEncoder",
                )
            refuse_loading_options({"device": device, "dtype": dtype, "trust_remote_code": trust_remote_code})
            self.model = model
            if max_length is not None:
                self.model.max_seq_length = max_length
            self.model_id = instance_model_id(model)

        num_labels = getattr(self.model, "num_labels", 1)
        if num_labels != 1:
            raise InvalidInputError(
                self.model_id,
                f"this CrossEncoder has {num_labels} outputs per pair; reranking needs a model with one score "
                "(num_labels=1), e.g. a reranker or a yes/no LogitScore model",
            )

        model_modalities = list(self.model.modalities)
        self._chat = "message" in model_modalities
        readable = {m for m in model_modalities if isinstance(m, str) and m in MODALITIES}
        # Without a chat template, only (text, text) pairs reach the model: any other pair is turned
        # into chat messages by sentence-transformers, which such a model cannot process.
        self.modalities: frozenset[Modality] = frozenset(readable if self._chat else readable & {"text"})

        if media is None:
            from omniretrieve.media import MediaLoader

            media = MediaLoader()
        self.media = media
        self.batch_size = batch_size
        self.unsupported: UnsupportedPolicy = unsupported
        self.show_progress = show_progress

    def __repr__(self) -> str:
        return f"CrossEncoderReranker(model_id={self.model_id!r}, modalities={sorted(self.modalities)})"

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        """Whether the model reads items of this modality (a tuple: a combined item of those parts)."""
        return supports_modality(modality, self.modalities, combined=self._chat)

    def rerank(
        self, query: ItemInput, candidates: Sequence[ItemInput], *, top_n: int | None = None
    ) -> list[RerankResult]:
        """Score every candidate against ``query`` and return results sorted by score, best first.

        Args:
            query: text, an image or a combined item (whatever the model reads).
            candidates: any mix of items (see :data:`~omniretrieve.types.ItemInput`).
            top_n: keep only the first ``top_n`` results (after ordering); None keeps all.

        Returns:
            One :class:`RerankResult` per candidate (fewer under ``unsupported="drop"`` or
            ``top_n``): scored ones by score descending, then unscored ones in incoming order.

        Raises:
            UnsupportedModalityError: the model cannot read the query, or (policy ``"error"``) a
                candidate.
            MediaError: the query's media could not be loaded.
            InvalidInputError: the query, ``candidates`` or ``top_n`` is of no accepted shape.
        """
        check_top_n(top_n)
        q_item = check_query(query, self.supports, self.modalities)
        to_score, results = split_supported(candidates, self.supports, self.modalities, self.unsupported)
        if not to_score:
            return order_results(results, top_n)
        q_input = self._model_input(q_item)

        groups: dict[object, list[tuple[int, NormalizedItem]]] = {}
        for index, item in to_score:
            groups.setdefault(modality_of(item), []).append((index, item))
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                results.extend(self._score_chunk(q_input, group[start : start + self.batch_size]))
        return order_results(results, top_n)

    # -- internals -----------------------------------------------------------------------------

    def _score_chunk(self, q_input: Any, chunk: list[tuple[int, NormalizedItem]]) -> list[RerankResult]:
        results: list[RerankResult] = []
        ready: list[tuple[int, NormalizedItem, Any]] = []
        for index, item in chunk:
            try:
                ready.append((index, item, self._model_input(item)))
            except OmniretrieveError as exc:
                results.append(RerankResult(index, float("-inf"), exc))
        outcomes = batch_then_isolate(
            [(q_input, doc) for _, _, doc in ready], self._predict, what="(query, candidate) pairs"
        )
        for (index, item, _), outcome in zip(ready, outcomes, strict=True):
            if isinstance(outcome, Exception):
                results.append(self._model_failure(index, item, outcome))
            else:
                results.append(self._result(index, item, outcome))
        return results

    def _predict(self, pairs: list[tuple[Any, Any]]) -> list[float]:
        scores = self.model.predict(
            pairs, batch_size=self.batch_size, show_progress_bar=self.show_progress, convert_to_numpy=True
        )
        values = [float(s) for s in scores.reshape(-1)]
        if len(values) != len(pairs):
            raise RuntimeError(f"the model returned {len(values)} scores for {len(pairs)} pairs")
        return values

    @staticmethod
    def _result(index: int, item: NormalizedItem, score: float) -> RerankResult:
        if math.isnan(score):
            return RerankResult(
                index,
                float("-inf"),
                RerankError(f"candidate {index} {describe(item)}", "the reranker returned NaN"),
            )
        return RerankResult(index, score)

    @staticmethod
    def _model_failure(index: int, item: NormalizedItem, exc: Exception) -> RerankResult:
        logger.warning("reranker failed on candidate %d %s: %s", index, describe(item), exc)
        error = RerankError(
            f"candidate {index} {describe(item)}",
            f"the reranker model failed on this item: {type(exc).__name__}: {exc}",
        )
        error.__cause__ = exc
        return RerankResult(index, float("-inf"), error)

    def _model_input(self, item: NormalizedItem) -> Any:
        """What the ``CrossEncoder`` is handed for one item.

        Text goes in a form never read as a path or URL; media is loaded in memory (PIL image,
        1-D float32 audio, uint8 frames).
        """
        if isinstance(item, Text):
            text = truncate_text(self.model, item.text)  # bounds the tokeniser by the model's input size
            return {"text": text} if self._chat else text
        if isinstance(item, (Image, Audio, Video)):
            return self._load(item)
        parts: dict[str, Any] = {}
        if item.text is not None:
            parts["text"] = truncate_text(self.model, item.text)
        for media in (item.image, item.audio, item.video):
            if media is not None:
                parts[media.modality] = self._load(media)
        return parts

    def _load(self, item: Image | Audio | Video) -> Any:
        if isinstance(item, Image):
            return self.media.load_image(item)
        if isinstance(item, Audio):
            samples = self.media.load_audio(item, sampling_rate=audio_sampling_rate(self.model))
            return crop_audio_to_window(self.model, samples)
        return self.media.load_video(item, num_frames=video_num_frames(self.model))


def _load_cross_encoder(
    model: str | os.PathLike[str],
    *,
    device: str | None,
    dtype: Any,
    trust_remote_code: bool,
    max_length: int | None,
) -> Any:
    st = require("sentence_transformers", extra=None, purpose="reranking", package="sentence-transformers")
    name = os.fspath(model)
    local = Path(name).is_dir()
    if isinstance(model, os.PathLike) and not local:
        raise InvalidInputError(describe(model), "no model directory at this path")
    model_kwargs = load_kwargs(dtype)
    try:
        return st.CrossEncoder(
            name,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=local,
            max_length=max_length,
            **({"model_kwargs": model_kwargs} if model_kwargs else {}),
        )
    except OSError as exc:
        raise InvalidInputError(
            describe(name),
            f"could not load a CrossEncoder from here ({exc}); pass a local model directory or a hub id",
        ) from exc


__all__ = ["CrossEncoderReranker"]
