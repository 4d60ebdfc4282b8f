"""Reranking with any sentence-transformers ``CrossEncoder``: :class:`CrossEncoderReranker`."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omniretrieve.errors import InvalidInputError, OmniretrieveError, RerankError, require
from omniretrieve.models import (
    audio_sampling_rate,
    batch_then_isolate,
    crop_audio_to_window,
    instance_model_id,
    loader_options,
    model_revision,
    refuse_loading_options,
    truncate_text,
    video_num_frames,
)
from omniretrieve.rerank.fusion import check_weight, fuse_results
from omniretrieve.rerank.protocol import RerankResult, UnsupportedPolicy
from omniretrieve.rerank.rules import (
    check_policy,
    check_query,
    check_top_n,
    order_results,
    scored_result,
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
        reranker = CrossEncoderReranker("demo")  # the demo reranker shipped in the package (offline)
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

    Scores: a model whose activation is a sigmoid (sentence-transformers' default for one output)
    is run without it and ranked by its logits; the score returned is the sigmoid of the logit
    computed in float64. The model's own float32 sigmoid saturates: a confident model's candidates
    all score 0.9999999x, a handful of distinct values, and its ranking among them is lost to
    ties (measured on the demo reranker: the whole calibrated top 10 of a query in 3 values).
    Fusion reads the logits (:meth:`raw_scores`), not the sigmoid: even in float64 the sigmoid
    squeezes the candidates the model is sure of (logits 5 to 11: 0.993 to 0.99998) into a sliver
    of [0, 1], so once min-max normalised over a list with a few sure negatives, the reranker's
    order among its sure candidates weighs next to nothing against the first stage's (measured on
    the demo's validation splits: ``benchmarks/results/rerank.json``, ``validation``).

    Score fusion (``first_stage_weight=w > 0``): when ``rerank`` is given the first stage's scores
    of the candidates (``first_stage_scores=``), each result's score is
    ``w * minmax(first stage) + (1 - w) * minmax(reranker logits)`` over the list
    (:func:`~omniretrieve.rerank.fusion.fuse_scores`): the first stage keeps the order where its
    scores are far apart, the reranker decides among its near ties. Without first-stage scores the
    reranker's own scores are returned. ``Store.search`` passes its scores to a reranker whose
    ``first_stage_weight`` is above 0. The default weight is the model's own: the demo reranker's
    shipped weight (chosen on validation queries, see its model card), or the ``"first_stage_weight"``
    a local directory records in ``omniretrieve_reranker.json``
    (:func:`~omniretrieve.rerank.loading.saved_first_stage_weight`); else 0, the reranker alone.

    Args:
        model: a hub id or local directory (loaded with ``CrossEncoder``; a local directory is
            loaded with ``local_files_only``, so nothing is downloaded), ``"demo"`` (the demo
            reranker shipped in the package, as :func:`~omniretrieve.rerank.load_reranker`), or a
            loaded ``CrossEncoder``.
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
        revision: the hub revision to load (a branch, tag or commit hash); :attr:`revision` tells
            the version actually loaded.
        cache_folder: where hub models are cached (default: the Hugging Face cache).
        local_files_only: never download; default: True for a local directory, else False.
        token: a Hugging Face token for private or gated models (``True``: the saved one).
        backend: ``"torch"`` (the library's default), ``"onnx"`` or ``"openvino"``.
        prompts: prompt names to prompt texts.
        default_prompt_name: the prompt used when none is named.
        model_kwargs: extra keyword arguments for loading the transformers model (``dtype`` is
            added to them).
        processor_kwargs: extra keyword arguments for loading the processor/tokenizer.
        config_kwargs: extra keyword arguments for loading the transformers config.
        model_card_data: the model card's data (``CrossEncoderModelCardData``).
        num_labels: outputs per pair to load the head with (reranking needs 1).
        activation_fn: the function applied to the model's scores.
        keep_in_fp32_modules: modules kept in float32 whatever ``dtype`` is.
        first_stage_weight: weight of the first stage's (min-max normalised) scores in the
            result scores, in [0, 1], against the reranker's (min-max normalised) logits; 0 ranks
            by the reranker alone. None (default): the model's
            own weight, see "Score fusion" (0 for a hub id or a loaded ``CrossEncoder``).

        Every ``CrossEncoder(...)`` loading option is one of these (the list is
        :data:`omniretrieve.models.CROSS_ENCODER_OPTIONS`) and applies only when ``model`` is
        loaded here; with a loaded ``CrossEncoder`` they are refused (``max_length`` excepted,
        which is set on it).

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
        revision: str | None = None,
        cache_folder: str | None = None,
        local_files_only: bool | None = None,
        token: bool | str | None = None,
        backend: str | None = None,
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        processor_kwargs: Mapping[str, Any] | None = None,
        config_kwargs: Mapping[str, Any] | None = None,
        model_card_data: Any = None,
        num_labels: int | None = None,
        activation_fn: Callable[..., Any] | None = None,
        keep_in_fp32_modules: Sequence[str] | None = None,
        first_stage_weight: float | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size={batch_size!r}", "batch_size must be a positive int")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        ):
            raise InvalidInputError(f"max_length={max_length!r}", "max_length must be None or a positive int")
        check_policy(unsupported)
        weight = None if first_stage_weight is None else check_weight(first_stage_weight)

        options = {
            "device": device,
            "trust_remote_code": trust_remote_code,
            "revision": revision,
            "cache_folder": cache_folder,
            "local_files_only": local_files_only,
            "token": token,
            "backend": backend,
            "prompts": prompts,
            "default_prompt_name": default_prompt_name,
            "model_kwargs": model_kwargs,
            "processor_kwargs": processor_kwargs,
            "config_kwargs": config_kwargs,
            "model_card_data": model_card_data,
            "num_labels": num_labels,
            "activation_fn": activation_fn,
            "keep_in_fp32_modules": None if keep_in_fp32_modules is None else list(keep_in_fp32_modules),
        }
        self._asked = (revision, cache_folder)
        if isinstance(model, str) and model in _demo_names():
            from omniretrieve.demo.loading import DEMO_RERANKER_ID
            from omniretrieve.rerank.loading import demo_reranker_dir

            folder = demo_reranker_dir()
            self.model: Any = _load_cross_encoder(folder, dtype, max_length, options)
            self.model_id = DEMO_RERANKER_ID
            self._source: str | None = folder
        elif isinstance(model, (str, os.PathLike)):
            self.model = _load_cross_encoder(model, dtype, max_length, options)
            self.model_id = os.fspath(model)
            self._source = self.model_id
        else:
            if not (callable(getattr(model, "predict", None)) and hasattr(model, "modalities")):
                raise InvalidInputError(
                    describe(model),
                    "model must be a hub id, a local directory or a sentence-transformers CrossEncoder",
                )
            refuse_loading_options({"dtype": dtype, **options})
            self.model = model
            if max_length is not None:
                self.model.max_seq_length = max_length
            self.model_id = instance_model_id(model)
            self._source = None

        self.first_stage_weight: float = weight if weight is not None else _saved_weight(self._source)

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

    @property
    def revision(self) -> str | None:
        """The version of the model loaded: its hub commit, or ``"sha256:..."`` for a local directory.

        See :func:`omniretrieve.models.model_revision`; ``None`` for a model built in memory.
        """
        if not hasattr(self, "_revision"):
            revision, cache_folder = self._asked
            self._revision = model_revision(
                self.model, name=self._source, revision=revision, cache_folder=cache_folder
            )
        return self._revision

    def __repr__(self) -> str:
        return f"CrossEncoderReranker(model_id={self.model_id!r}, modalities={sorted(self.modalities)})"

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        """Whether the model reads items of this modality (a tuple: a combined item of those parts)."""
        return supports_modality(modality, self.modalities, combined=self._chat)

    def rerank(
        self,
        query: ItemInput,
        candidates: Sequence[ItemInput],
        *,
        top_n: int | None = None,
        first_stage_scores: Sequence[float] | None = None,
    ) -> list[RerankResult]:
        """Score every candidate against ``query`` and return results sorted by score, best first.

        Args:
            query: text, an image or a combined item (whatever the model reads).
            candidates: any mix of items (see :data:`~omniretrieve.types.ItemInput`).
            top_n: keep only the first ``top_n`` results (after ordering); None keeps all.
            first_stage_scores: the first stage's score of each candidate (e.g. ``hit.score`` of
                ``Store.search`` hits); with ``first_stage_weight > 0`` the results carry the
                fused score (see the class docstring), otherwise they are ignored.

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
        if first_stage_scores is not None and len(first_stage_scores) != len(candidates):
            raise InvalidInputError(
                "first_stage_scores",
                f"{len(first_stage_scores)} scores for {len(candidates)} candidates; give one per candidate",
            )
        results = self._score(query, candidates)
        if first_stage_scores is not None and self.first_stage_weight > 0:
            fused = fuse_results(results, first_stage_scores, self.first_stage_weight)  # on the logits
            return order_results(fused, top_n)
        return self._squash(order_results(results, top_n))  # ordered by the logits, then squashed

    def raw_scores(self, query: ItemInput, candidates: Sequence[ItemInput]) -> list[float]:
        """The model's score of each candidate, in the candidates' order, on the scale fusion reads.

        For a model whose activation is a sigmoid, its logits (what :meth:`rerank` ranks by);
        otherwise its activation's output, as :meth:`rerank` returns it. ``float("-inf")`` for a
        candidate that was not scored: its media would not load, the model failed on it, or the
        model cannot read its modality (under ``unsupported="error"`` that raises instead). Use it
        to fuse with other scores yourself (:func:`~omniretrieve.rerank.fusion.fuse_scores`), or at
        several weights while scoring each list once.

        Raises:
            The errors of :meth:`rerank`.
        """
        scores = [float("-inf")] * len(candidates)
        for r in self._score(query, candidates):
            if r.ok:
                scores[r.index] = r.score
        return scores

    def _score(self, query: ItemInput, candidates: Sequence[ItemInput]) -> list[RerankResult]:
        """One result per candidate kept by the ``unsupported`` policy, with the model's raw score, unordered."""
        q_item = check_query(query, self.supports, self.modalities)
        to_score, results = split_supported(candidates, self.supports, self.modalities, self.unsupported)
        if not to_score:
            return results
        q_input = self._model_input(q_item)

        groups: dict[object, list[tuple[int, NormalizedItem]]] = {}
        for index, item in to_score:
            groups.setdefault(modality_of(item), []).append((index, item))
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                results.extend(self._score_chunk(q_input, group[start : start + self.batch_size]))
        return results

    def _squash(self, results: list[RerankResult]) -> list[RerankResult]:
        """The scored results' logits as the model's sigmoid, in float64 (a model without one: unchanged)."""
        if not self._squashed:
            return results
        return [RerankResult(r.index, _sigmoid(r.score)) if r.ok else r for r in results]

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
                results.append(scored_result(index, item, outcome))
        return results

    @property
    def _squashed(self) -> bool:
        """Whether the model's activation is a sigmoid: then it is scored by its logits (see the class docstring)."""
        import torch

        return isinstance(getattr(self.model, "activation_fn", None), torch.nn.Sigmoid)

    def _predict(self, pairs: list[tuple[Any, Any]]) -> list[float]:
        import torch

        scores = self.model.predict(
            pairs,
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            convert_to_numpy=True,
            activation_fn=torch.nn.Identity() if self._squashed else None,
        )
        values = [float(s) for s in scores.reshape(-1)]
        if len(values) != len(pairs):
            raise RuntimeError(f"the model returned {len(values)} scores for {len(pairs)} pairs")
        return values

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


def _demo_names() -> frozenset[str]:
    from omniretrieve.rerank.loading import DEMO_RERANKER_SPECS

    return DEMO_RERANKER_SPECS


def _saved_weight(source: str | None) -> float:
    """The first-stage weight a local model directory records (0 for anything else)."""
    if source is None or not Path(source).is_dir():
        return 0.0
    from omniretrieve.rerank.loading import saved_first_stage_weight

    return saved_first_stage_weight(source) or 0.0


def _load_cross_encoder(
    model: str | os.PathLike[str], dtype: Any, max_length: int | None, options: dict[str, Any]
) -> Any:
    st = require("sentence_transformers", extra=None, purpose="reranking", package="sentence-transformers")
    name = os.fspath(model)
    local = Path(name).is_dir()
    if isinstance(model, os.PathLike) and not local:
        raise InvalidInputError(describe(model), "no model directory at this path")
    if options.get("local_files_only") is None:
        options = {**options, "local_files_only": local}
    try:
        return st.CrossEncoder(name, max_length=max_length, **loader_options(dtype, **options))
    except OSError as exc:
        raise InvalidInputError(
            describe(name),
            f"could not load a CrossEncoder from here ({exc}); pass a local model directory or a hub id",
        ) from exc


def _sigmoid(logit: float) -> float:
    """``1 / (1 + exp(-logit))`` in float64, without overflow."""
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    e = math.exp(logit)
    return e / (1.0 + e)


__all__ = ["CrossEncoderReranker"]
