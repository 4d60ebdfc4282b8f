"""Reranking a mixed list of candidates (texts, images, combined items, audio, video) against a query.

A :class:`Reranker` scores each (query, candidate) pair jointly and returns the candidates sorted by
score, best first. :class:`CrossEncoderReranker` runs any sentence-transformers ``CrossEncoder``:
a text cross-encoder (MS MARCO style), or a multimodal one (a vision-language model with a yes/no
``LogitScore`` head) that reads images, and audio or video where the model takes them.
:class:`~omniretrieve.testing.rerankers.FakeReranker` is the test double.

Results (:class:`RerankResult`):

- One result per candidate (unless the ``"drop"`` policy removes it), ``index`` pointing into the
  candidate list you passed.
- Scored candidates come first, by score descending; equal scores keep their incoming order.
- Candidates that could not be scored come after all scored ones, in their incoming order, with
  ``score == float("-inf")`` and ``error`` set (``result.scored`` is False): a media file that would
  not load (a :class:`~omniretrieve.errors.MediaError`), an input of no accepted shape
  (:class:`~omniretrieve.errors.InvalidInputError`), a modality the model cannot read under the
  ``"keep_last"`` policy (:class:`~omniretrieve.errors.UnsupportedModalityError`), or an item the
  model itself failed on (:class:`~omniretrieve.errors.EmbeddingError`). One bad candidate never
  costs the others.
- ``top_n`` is applied last, after this ordering.

Unsupported modalities (``unsupported=``): ``"keep_last"`` (default) keeps such candidates, unscored,
after the scored ones; ``"drop"`` leaves them out of the results; ``"error"`` raises
:class:`~omniretrieve.errors.UnsupportedModalityError` naming the first one, before anything is
scored. A query the model cannot read always raises.

Safety: every candidate goes through :class:`~omniretrieve.media.MediaLoader` (and so its
:class:`~omniretrieve.media.MediaPolicy`) before it reaches the model; the model is handed PIL images
and arrays, never a path or URL. Text is handed over in a form the library cannot mistake for a
path or URL (``{"text": s}`` for chat-template models; a plain ``(str, str)`` text pair for
text-only ones, which sentence-transformers always tokenises as text), so a URL-shaped text
candidate is scored as text and never fetched.

Example::

    from omniretrieve.rerank import CrossEncoderReranker
    from omniretrieve.types import Image

    reranker = CrossEncoderReranker("path/to/cross-encoder")
    results = reranker.rerank(
        "a red circle",
        ["a blue square", Image("photos/circle.png"), {"text": "red things", "image": "red.png"}],
        top_n=2,
    )
    for r in results:
        print(r.index, r.score)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

from omniretrieve.errors import (
    EmbeddingError,
    InvalidInputError,
    OmniretrieveError,
    UnsupportedModalityError,
    require,
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
    as_item,
    describe,
    modality_of,
)

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

    from omniretrieve.media import MediaLoader

logger = logging.getLogger(__name__)

UnsupportedPolicy: TypeAlias = Literal["keep_last", "drop", "error"]
"""What to do with a candidate of a modality the model cannot read (see the module docstring)."""

_POLICIES: tuple[str, ...] = ("keep_last", "drop", "error")

DEFAULT_VIDEO_FRAMES = 8
"""Frames sampled from a video candidate when the model's processor does not name a number."""


@dataclass(frozen=True)
class RerankResult:
    """The score of one candidate.

    Attributes:
        index: position of the candidate in the list passed to :meth:`Reranker.rerank`.
        score: the model's relevance score (higher is more relevant; for a ``CrossEncoder`` with one
            output, its activation, by default a sigmoid in ``[0, 1]``). ``float("-inf")`` when the
            candidate was not scored.
        error: why the candidate was not scored, or None when it was.
    """

    index: int
    score: float
    error: OmniretrieveError | None = None

    @property
    def scored(self) -> bool:
        """True when the model scored this candidate (``error`` is None)."""
        return self.error is None


@runtime_checkable
class Reranker(Protocol):
    """Scores candidates against a query and returns them best first.

    Attributes:
        model_id: hub id or local path of the model (or a fake's name).
        modalities: the single modalities the model reads as a query or candidate.
    """

    model_id: str
    modalities: frozenset[Modality]

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        """Whether the model reads items of this modality (a tuple: a combined item of those parts)."""
        ...

    def rerank(
        self, query: ItemInput, candidates: Sequence[ItemInput], *, top_n: int | None = None
    ) -> list[RerankResult]:
        """Score each candidate against ``query``; results sorted by score, best first (see module doc)."""
        ...


# ---------------------------------------------------------------------------------------------
# Shared by every reranker (the fake one included): checks, policy, ordering
# ---------------------------------------------------------------------------------------------


def _supports_modality(
    modality: Modality | tuple[Modality, ...], modalities: frozenset[Modality], *, combined: bool
) -> bool:
    if isinstance(modality, tuple):
        return combined and len(modality) > 0 and all(m in modalities for m in modality)
    return modality in modalities


def _check_top_n(top_n: int | None) -> None:
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        raise InvalidInputError(f"top_n={top_n!r}", "top_n must be None or a non-negative int")


def _check_policy(unsupported: str) -> None:
    if unsupported not in _POLICIES:
        raise InvalidInputError(
            f"unsupported={unsupported!r}", f"the policy must be one of {list(_POLICIES)}"
        )


def _check_query(
    query: ItemInput,
    supports: Callable[[Modality | tuple[Modality, ...]], bool],
    modalities: frozenset[Modality],
) -> NormalizedItem:
    item = as_item(query)
    modality = modality_of(item)
    if not supports(modality):
        raise UnsupportedModalityError(f"query {describe(item)}", modality, sorted(modalities))
    return item


def _split_supported(
    candidates: Sequence[ItemInput],
    supports: Callable[[Modality | tuple[Modality, ...]], bool],
    modalities: frozenset[Modality],
    policy: UnsupportedPolicy,
) -> tuple[list[tuple[int, NormalizedItem]], list[RerankResult]]:
    """Normalise candidates and apply the unsupported-modality policy.

    Returns:
        The ``(index, item)`` pairs to score, and the results already decided (unscored ones).

    Raises:
        UnsupportedModalityError: under the ``"error"`` policy, for the first unreadable candidate.
    """
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise InvalidInputError(
            describe(candidates), "candidates must be a list (or other sequence) of items"
        )
    to_score: list[tuple[int, NormalizedItem]] = []
    decided: list[RerankResult] = []
    for index, value in enumerate(candidates):
        try:
            item = as_item(value)
        except InvalidInputError as exc:
            decided.append(RerankResult(index, float("-inf"), exc))
            continue
        modality = modality_of(item)
        if supports(modality):
            to_score.append((index, item))
            continue
        error = UnsupportedModalityError(f"candidate {index} {describe(item)}", modality, sorted(modalities))
        if policy == "error":
            raise error
        if policy == "keep_last":
            decided.append(RerankResult(index, float("-inf"), error))
    return to_score, decided


def _order_results(results: list[RerankResult], top_n: int | None) -> list[RerankResult]:
    """Scored results by score descending (ties: incoming order), then unscored in incoming order."""
    scored = sorted((r for r in results if r.scored), key=lambda r: (-r.score, r.index))
    unscored = sorted((r for r in results if not r.scored), key=lambda r: r.index)
    ordered = scored + unscored
    return ordered if top_n is None else ordered[:top_n]


# ---------------------------------------------------------------------------------------------
# CrossEncoderReranker
# ---------------------------------------------------------------------------------------------


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
        best = [candidates[r.index] for r in results if r.scored]

    How it works: candidates are normalised (:func:`~omniretrieve.types.as_item`), the
    ``unsupported`` policy is applied, then candidates are grouped by modality (one modality
    combination per model batch) and scored ``batch_size`` at a time: each chunk's media is loaded
    through ``media`` (a :class:`~omniretrieve.media.MediaLoader`, so only that chunk is held in
    memory), and the (query, candidate) pairs go to ``CrossEncoder.predict``. If the model fails on a
    chunk, its candidates are retried one by one so that only the failing ones get an error result.
    The query is loaded once per call; a query that will not load raises.

    Which modalities the model reads comes from the ``CrossEncoder``: a model with a chat template
    (``"message"`` modality) pairs any of its modalities, and combined items of them; a model
    without one (a classic BERT-style cross-encoder) reads text pairs only.

    Args:
        model: a hub id or local directory (loaded with ``CrossEncoder``; a local directory is
            loaded with ``local_files_only``, so nothing is downloaded), or a loaded ``CrossEncoder``.
        device: torch device for loading (``"cpu"``, ``"cuda"``...); None lets the library choose.
            ``device``, ``dtype`` and ``trust_remote_code`` apply only when ``model`` is loaded here.
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
        InvalidInputError: a bad parameter, a model that could not be loaded, or a model with more
            than one output (reranking needs one score per pair).
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
        _check_policy(unsupported)

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
            self.model = model
            if max_length is not None:
                self.model.max_seq_length = max_length
            name = getattr(getattr(model, "config", None), "name_or_path", None) or getattr(
                getattr(model, "model_card_data", None), "base_model", None
            )
            self.model_id = str(name) if name else type(model).__name__

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
        return _supports_modality(modality, self.modalities, combined=self._chat)

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
        _check_top_n(top_n)
        q_item = _check_query(query, self.supports, self.modalities)
        to_score, results = _split_supported(candidates, self.supports, self.modalities, self.unsupported)
        if not to_score:
            return _order_results(results, top_n)
        q_input = self._model_input(q_item)

        groups: dict[object, list[tuple[int, NormalizedItem]]] = {}
        for index, item in to_score:
            groups.setdefault(modality_of(item), []).append((index, item))
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                results.extend(self._score_chunk(q_input, group[start : start + self.batch_size]))
        return _order_results(results, top_n)

    # -- internals -----------------------------------------------------------------------------

    def _score_chunk(self, q_input: Any, chunk: list[tuple[int, NormalizedItem]]) -> list[RerankResult]:
        results: list[RerankResult] = []
        ready: list[tuple[int, NormalizedItem, Any]] = []
        for index, item in chunk:
            try:
                ready.append((index, item, self._model_input(item)))
            except OmniretrieveError as exc:
                results.append(RerankResult(index, float("-inf"), exc))
        if not ready:
            return results
        try:
            scores = self._predict([(q_input, doc) for _, _, doc in ready])
        except Exception as exc:
            if len(ready) == 1:
                index, item, _ = ready[0]
                return [*results, self._model_failure(index, item, exc)]
            logger.warning("reranker batch of %d failed (%s); retrying one by one", len(ready), exc)
            for index, item, doc in ready:
                try:
                    (score,) = self._predict([(q_input, doc)])
                except Exception as single_exc:
                    results.append(self._model_failure(index, item, single_exc))
                    continue
                results.append(self._result(index, item, score))
            return results
        results.extend(
            self._result(index, item, score) for (index, item, _), score in zip(ready, scores, strict=True)
        )
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
                EmbeddingError(f"candidate {index} {describe(item)}", "the reranker returned NaN"),
            )
        return RerankResult(index, score)

    @staticmethod
    def _model_failure(index: int, item: NormalizedItem, exc: Exception) -> RerankResult:
        logger.warning("reranker failed on candidate %d %s: %s", index, describe(item), exc)
        error = EmbeddingError(
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
            return {"text": item.text} if self._chat else item.text
        if isinstance(item, (Image, Audio, Video)):
            return self._load(item)
        parts: dict[str, Any] = {}
        if item.text is not None:
            parts["text"] = item.text
        for media in (item.image, item.audio, item.video):
            if media is not None:
                parts[media.modality] = self._load(media)
        return parts

    def _load(self, item: Image | Audio | Video) -> Any:
        if isinstance(item, Image):
            return self.media.load_image(item)
        if isinstance(item, Audio):
            return self.media.load_audio(item, sampling_rate=self._sampling_rate())
        return self.media.load_video(item, num_frames=self._num_frames())

    def _processor(self) -> Any:
        try:
            return self.model[0].processor
        except (AttributeError, IndexError, TypeError, KeyError):
            return None

    def _sampling_rate(self) -> int:
        processor = self._processor()
        extractor = getattr(processor, "feature_extractor", processor)
        rate = getattr(extractor, "sampling_rate", None)
        if not isinstance(rate, int):
            raise UnsupportedModalityError(self.model_id, "audio", sorted(self.modalities))
        return rate

    def _num_frames(self) -> int:
        processor = self._processor()
        video_processor = getattr(processor, "video_processor", None)
        frames = getattr(video_processor, "num_frames", None)
        return frames if isinstance(frames, int) and frames > 0 else DEFAULT_VIDEO_FRAMES


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
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["model_kwargs"] = {"dtype": dtype}
    try:
        return st.CrossEncoder(
            name,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=local,
            max_length=max_length,
            **kwargs,
        )
    except OSError as exc:
        raise InvalidInputError(
            describe(name),
            f"could not load a CrossEncoder from here ({exc}); pass a local model directory or a hub id",
        ) from exc


__all__ = [
    "CrossEncoderReranker",
    "RerankResult",
    "Reranker",
    "UnsupportedPolicy",
]
