"""Embedding any mix of items with one model.

The interface the store, search and adapters use is :class:`Embedder`, a small protocol::

    model_id: str                      # what a store records and checks: hub id, path, "fake:<dim>"
    dimension: int
    modalities: frozenset[Modality]    # single modalities the model reads
    similarity: str                    # "cosine" (vectors are L2-normalised)
    supports(modality) -> bool
    embed(items, *, role="document", show_progress=None) -> np.ndarray
        # (n, dimension) float32, L2-normalised, input order; raises the first failing item's error
    embed_each(items, *, role="document", show_progress=None) -> list[EmbeddingResult]
        # one result per input, input order; a bad item never costs the good ones
    embed_query(item) -> np.ndarray    # (dimension,), role="query"

:class:`BaseEmbedder` implements ``embed``/``embed_each``/``embed_query`` once for every model:

1. every input is normalised with :func:`~omniretrieve.types.as_item` (a plain ``str`` is always
   text, never a path or URL to fetch);
2. items are routed by modality; an item whose modality the model lacks gets an
   :class:`~omniretrieve.errors.UnsupportedModalityError`;
3. media are loaded by a :class:`~omniretrieve.media.MediaLoader` (its policy decides which paths
   and URLs may be read; the default refuses URLs), in a small thread pool that decodes the next
   batch while the model encodes the current one; a media error marks only that item;
4. each modality is encoded in batches of ``batch_size``, one modality per model call; when a
   batch fails, its items are retried one by one so the failing item is isolated;
5. every vector is checked (finite, non-zero), L2-normalised, cast to float32 and put back in
   input order.

Combined items (``{"text": ..., "image": ...}``) are embedded natively when the model reads that
combination in one input; otherwise (``combine="mean"``, or ``"auto"`` without native support) as
the L2-normalised mean of their parts' normalised embeddings.

:class:`SentenceTransformerEmbedder` runs any sentence-transformers model (text, image, audio,
video). :class:`omniretrieve.testing.fakes.FakeEmbedder` is a deterministic, model-free double that
goes through the same routing and media loading.

:func:`load_embedder` builds an embedder from a name: ``"demo"`` (the toy CLIP shipped in the package,
id :data:`DEMO_MODEL_ID` wherever it is installed), ``"omniretrieve/demo-clip-nogap"`` (its gap-free
twin, :data:`DEMO_NOGAP_MODEL_ID`), ``"fake:<dim>"``, or any sentence-transformers hub id or local
directory. Every id it reports loads again through it, so ``load_embedder(Store.inspect(...).model_id)``
reopens a store with the model it was built with.
"""

from __future__ import annotations

import logging
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np

from omniretrieve.errors import (
    EmbeddingError,
    InvalidInputError,
    MediaError,
    MissingDependencyError,
    OmniretrieveError,
    UnsupportedModalityError,
    require,
)
from omniretrieve.types import (
    MODALITIES,
    Audio,
    Combined,
    Image,
    ItemInput,
    Modality,
    NormalizedItem,
    Role,
    Text,
    Video,
    as_item,
    describe,
    modality_of,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from omniretrieve.media import MediaLoader

logger = logging.getLogger(__name__)

CombineStrategy: TypeAlias = Literal["auto", "native", "mean"]
"""How a combined item (several parts) is embedded: ``"native"``: as one input, which the model
must support; ``"mean"``: as the L2-normalised mean of its parts' normalised embeddings; ``"auto"``:
native where the model supports the combination, mean otherwise."""

RouteKey: TypeAlias = "Modality | tuple[Modality, ...]"
"""What one model call holds: one modality, or one combination of modalities (native combined)."""

ROLES: tuple[Role, ...] = ("query", "document")

_ZERO_NORM = 1e-12


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns items into L2-normalised float32 vectors of one fixed dimension."""

    @property
    def model_id(self) -> str:
        """The id a store records and checks: the model's hub id or path, a stable name, or ``"fake:<dim>"``."""
        ...

    @property
    def dimension(self) -> int:
        """The length of every vector."""
        ...

    @property
    def modalities(self) -> frozenset[Modality]:
        """The single modalities the model reads."""
        ...

    @property
    def similarity(self) -> str:
        """How vectors compare: ``"cosine"`` (they are L2-normalised)."""
        ...

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        """Whether an item of this modality (or combination of modalities) can be embedded."""
        ...

    def embed(
        self, items: Sequence[ItemInput], *, role: Role = "document", show_progress: bool | None = None
    ) -> np.ndarray:
        """``(n, dimension)`` float32 unit vectors in input order; raises the first failing item's error."""
        ...

    def embed_each(
        self, items: Sequence[ItemInput], *, role: Role = "document", show_progress: bool | None = None
    ) -> list[EmbeddingResult]:
        """One :class:`EmbeddingResult` per input, in input order; a bad item never costs the good ones."""
        ...

    def embed_query(self, item: ItemInput) -> np.ndarray:
        """One ``(dimension,)`` unit vector for a query (``role="query"``)."""
        ...


@dataclass(frozen=True)
class EmbeddingResult:
    """The outcome for one input of :meth:`Embedder.embed_each`.

    Attributes:
        index: the input's position in the call.
        item: the normalised input; ``None`` only when the input was of no accepted shape (then
            ``error`` is an :class:`~omniretrieve.errors.InvalidInputError`).
        vector: the ``(dimension,)`` float32 unit vector, or ``None`` on error.
        error: why the item has no vector, or ``None``.
    """

    index: int
    item: NormalizedItem | None
    vector: np.ndarray | None
    error: OmniretrieveError | None

    @property
    def ok(self) -> bool:
        """Whether the item was embedded."""
        return self.error is None and self.vector is not None


def canonical_modalities(modality: Modality | tuple[Modality, ...]) -> tuple[Modality, ...]:
    """A modality or combination as a tuple in canonical order (text, image, audio, video), no repeats.

    Raises:
        InvalidInputError: a name is not a modality.
    """
    names = (modality,) if isinstance(modality, str) else tuple(modality)
    unknown = [m for m in names if m not in MODALITIES]
    if unknown or not names:
        raise InvalidInputError(repr(modality), f"not a modality or combination of {list(MODALITIES)}")
    return tuple(m for m in MODALITIES if m in names)


@dataclass
class _Job:
    """One input of one model call: a whole item, or one part of a combined item (mean strategy)."""

    index: int
    slot: int
    route: RouteKey
    source: NormalizedItem


@dataclass
class _Pending:
    """What is known about one item while a call runs."""

    item: NormalizedItem | None
    parts: int = 1
    error: OmniretrieveError | None = None
    vectors: dict[int, np.ndarray] | None = None


class BaseEmbedder(ABC):
    """The routing, media loading, batching and error isolation shared by every embedder.

    A subclass names its model (``model_id``, ``dimension``, ``modalities``) and implements
    :meth:`_encode`, which receives one model call's worth of prepared inputs, all of one route:

    - ``"text"``: ``str``;
    - ``"image"``: RGB ``PIL.Image.Image``;
    - ``"audio"``: 1-D float32 ``np.ndarray`` at :attr:`audio_sampling_rate`;
    - ``"video"``: uint8 ``np.ndarray`` ``(frames, H, W, 3)`` with :attr:`video_num_frames` frames;
    - a tuple of modalities (native combined, see :meth:`_supports_native`): a ``dict`` mapping each
      modality to its prepared part.

    Args:
        media: the loader for image/audio/video sources; default ``MediaLoader()`` with the default
            safe policy (local files, no URLs).
        batch_size: inputs per model call.
        combine: how combined items are embedded, see :data:`CombineStrategy`.
        show_progress: whether ``embed``/``embed_each`` show a progress bar by default.
        num_workers: threads that load and decode media while the model encodes the previous
            batch; 0 loads in the calling thread. Default: one less than the CPU count, 1 to 4.
    """

    def __init__(
        self,
        *,
        media: MediaLoader | None = None,
        batch_size: int = 32,
        combine: CombineStrategy = "auto",
        show_progress: bool = False,
        num_workers: int | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidInputError(f"batch_size={batch_size!r}", "must be a positive int")
        if combine not in ("auto", "native", "mean"):
            raise InvalidInputError(f"combine={combine!r}", "must be 'auto', 'native' or 'mean'")
        if num_workers is None:
            num_workers = max(1, min(4, (os.cpu_count() or 1) - 1))
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise InvalidInputError(f"num_workers={num_workers!r}", "must be an int >= 0")
        self._media = media
        self.batch_size = batch_size
        self.combine: CombineStrategy = combine
        self.show_progress = show_progress
        self.num_workers = num_workers

    # -- what a subclass describes -------------------------------------------------------------

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The id a store records and checks (a hub id, a local path or a stable name)."""

    @property
    @abstractmethod
    def dimension(self) -> int:
        """The length of every vector."""

    @property
    @abstractmethod
    def modalities(self) -> frozenset[Modality]:
        """The single modalities the model reads."""

    @property
    def similarity(self) -> str:
        """``"cosine"``: every vector is L2-normalised."""
        return "cosine"

    @property
    def audio_sampling_rate(self) -> int:
        """The sampling rate (Hz) audio is resampled to before it reaches the model."""
        return 16_000

    @property
    def video_num_frames(self) -> int:
        """How many frames of each video reach the model (sampled evenly over the video)."""
        return 8

    @property
    def video_frame_size(self) -> tuple[int, int] | None:
        """The frame size videos are decoded at, or ``None`` for their own size."""
        return None

    @property
    def image_min_side(self) -> int | None:
        """A decoding hint: the model downsizes images to about this many pixels a side anyway.

        When set, the loader may decode a JPEG at 1/2, 1/4 or 1/8 scale (DCT scaling, several
        times faster) while keeping both sides at least this long. ``None``: full-size decoding.
        """
        return None

    def _supports_native(self, modalities: tuple[Modality, ...]) -> bool:
        """Whether the model reads this combination (canonical order) as one input."""
        return False

    @abstractmethod
    def _encode(self, route: RouteKey, inputs: list[Any], role: Role) -> np.ndarray:
        """Embed one batch of prepared inputs of one route; return ``(len(inputs), dimension)``.

        May return vectors unnormalised: the caller checks and normalises them.
        """

    def _prepare_audio(self, samples: np.ndarray) -> np.ndarray:
        """Last change to loaded audio before the model sees it (a subclass may crop it)."""
        return samples

    # -- the loader ----------------------------------------------------------------------------

    @property
    def media(self) -> MediaLoader:
        """The media loader (created on first use with the default policy when none was given)."""
        if self._media is None:
            from omniretrieve.media import MediaLoader

            self._media = MediaLoader()
        return self._media

    # -- public API ----------------------------------------------------------------------------

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        """Whether items of this modality, or this combination of modalities, can be embedded.

        A combination is supported natively (the model reads it as one input) or, unless
        ``combine="native"``, when the model reads every part.
        """
        try:
            mods = canonical_modalities(modality)
        except InvalidInputError:
            return False
        if len(mods) == 1:
            return mods[0] in self.modalities
        return self._combine_route(mods) is not None

    def embed(
        self, items: Sequence[ItemInput], *, role: Role = "document", show_progress: bool | None = None
    ) -> np.ndarray:
        """Embed items into an ``(n, dimension)`` float32 array of unit vectors, in input order.

        Raises:
            OmniretrieveError: the error of the first item (in input order) that failed, e.g. a
                :class:`~omniretrieve.errors.MediaError` or
                :class:`~omniretrieve.errors.UnsupportedModalityError`. Use :meth:`embed_each` to
                keep the good items when some fail.
        """
        results = self.embed_each(items, role=role, show_progress=show_progress)
        for result in results:
            if result.error is not None:
                raise result.error
        if not results:
            return np.empty((0, self.dimension), dtype=np.float32)
        return np.stack([r.vector for r in results if r.vector is not None]).astype(np.float32, copy=False)

    def embed_query(self, item: ItemInput) -> np.ndarray:
        """Embed one query item (``role="query"``) into a ``(dimension,)`` float32 unit vector."""
        return self.embed([item], role="query", show_progress=False)[0]

    def embed_each(
        self, items: Sequence[ItemInput], *, role: Role = "document", show_progress: bool | None = None
    ) -> list[EmbeddingResult]:
        """Embed items one result each, in input order; a failing item never costs the others.

        Each :class:`EmbeddingResult` holds the vector or the typed error for that item:
        :class:`~omniretrieve.errors.InvalidInputError` (no accepted shape),
        :class:`~omniretrieve.errors.UnsupportedModalityError`, a
        :class:`~omniretrieve.errors.MediaError` subclass (could not load), or
        :class:`~omniretrieve.errors.EmbeddingError` (the model failed or returned a non-finite or
        zero vector; the cause is chained).

        Raises:
            InvalidInputError: ``items`` is a single item rather than a list (or other iterable) of
                items, or ``role`` is not ``"query"``/``"document"``.
        """
        if role not in ROLES:
            raise InvalidInputError(f"role={role!r}", "must be 'query' or 'document'")
        if (
            isinstance(items, (str, bytes, Mapping, np.ndarray))
            or not isinstance(items, Iterable)
            or _is_pil(items)
        ):
            raise InvalidInputError(
                describe(items),
                "embed takes a list of items: wrap a single item in a list, or use embed_query",
            )
        pending, jobs = self._plan(list(items))
        progress = self._progress(len(jobs), self.show_progress if show_progress is None else show_progress)
        try:
            self._run(jobs, pending, role, progress)
        finally:
            if progress is not None:
                progress.close()
        return [self._finish(i, p) for i, p in enumerate(pending)]

    # -- planning ------------------------------------------------------------------------------

    def _combine_route(self, mods: tuple[Modality, ...]) -> Literal["native", "mean"] | None:
        """How a combination is embedded by this model, or ``None`` if it cannot be."""
        if self.combine in ("auto", "native") and self._supports_native(mods):
            return "native"
        if self.combine in ("auto", "mean") and all(m in self.modalities for m in mods):
            return "mean"
        return None

    def _plan(self, items: Sequence[ItemInput]) -> tuple[list[_Pending], list[_Job]]:
        pending: list[_Pending] = []
        jobs: list[_Job] = []
        for index, value in enumerate(items):
            try:
                item = as_item(value)
            except OmniretrieveError as exc:
                pending.append(_Pending(item=None, error=exc))
                continue
            state = _Pending(item=item)
            pending.append(state)
            modality = modality_of(item)
            if isinstance(modality, str):
                if modality not in self.modalities:
                    state.error = self._unsupported(item, modality)
                    continue
                source: NormalizedItem = item
                if isinstance(item, Combined):  # a Combined of one part is that part
                    source = item.parts()[0]
                jobs.append(_Job(index, 0, modality, source))
                continue
            assert isinstance(item, Combined)
            how = self._combine_route(modality)
            if how is None:
                state.error = self._unsupported(item, modality)
            elif how == "native":
                jobs.append(_Job(index, 0, modality, item))
            else:
                parts = item.parts()
                state.parts = len(parts)
                jobs.extend(_Job(index, slot, part.modality, part) for slot, part in enumerate(parts))
        return pending, jobs

    def _unsupported(
        self, item: NormalizedItem, modality: Modality | tuple[Modality, ...]
    ) -> OmniretrieveError:
        supported: list[str] = [m for m in MODALITIES if m in self.modalities]
        if isinstance(modality, tuple):
            supported += ["+".join(combo) for combo in self._native_combinations()]
        return UnsupportedModalityError(describe(item), modality, supported)

    def _native_combinations(self) -> list[tuple[Modality, ...]]:
        """Every combination of two or more of the model's modalities that it reads natively."""
        mods = [m for m in MODALITIES if m in self.modalities]
        combos: list[tuple[Modality, ...]] = []
        for mask in range(1, 1 << len(mods)):
            combo = tuple(m for bit, m in enumerate(mods) if mask >> bit & 1)
            if len(combo) > 1 and self._supports_native(combo):
                combos.append(combo)
        return combos

    # -- running -------------------------------------------------------------------------------

    def _run(self, jobs: list[_Job], pending: list[_Pending], role: Role, progress: Any) -> None:
        groups: dict[RouteKey, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.route, []).append(job)
        needs_media = any(route != "text" for route in groups)
        pool = ThreadPoolExecutor(self.num_workers) if needs_media and self.num_workers > 0 else None
        try:
            for route, group in groups.items():
                if route == "text":
                    # Longest first, as sentence-transformers does, so each batch pads little.
                    group.sort(key=lambda job: -len(_text_of(job.source)))
                chunks = [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
                for chunk, loaded in self._load_ahead(chunks, pending, pool):
                    ready: list[tuple[_Job, Any]] = []
                    for job, outcome in zip(chunk, loaded, strict=True):
                        if isinstance(outcome, OmniretrieveError):
                            self._fail(pending[job.index], outcome)
                        elif outcome is not _SKIP:
                            ready.append((job, outcome))
                    if ready:
                        self._encode_chunk(route, ready, pending, role)
                    if progress is not None:
                        progress.update(len(chunk))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _load_ahead(
        self, chunks: list[list[_Job]], pending: list[_Pending], pool: ThreadPoolExecutor | None
    ) -> Iterator[tuple[list[_Job], list[Any]]]:
        """Yield each chunk with its loaded inputs, loading the next chunk while the caller encodes."""
        if pool is None:
            for chunk in chunks:
                yield chunk, [self._load_job(job, pending) for job in chunk]
            return
        submitted: list[Future[Any]] | None = None
        for k, chunk in enumerate(chunks):
            current = (
                submitted
                if submitted is not None
                else [pool.submit(self._load_job, j, pending) for j in chunk]
            )
            submitted = None
            if k + 1 < len(chunks):
                submitted = [pool.submit(self._load_job, j, pending) for j in chunks[k + 1]]
            yield chunk, [f.result() for f in current]

    def _load_job(self, job: _Job, pending: list[_Pending]) -> Any:
        """The prepared model input for a job, ``_SKIP`` if its item already failed, or the error."""
        if pending[job.index].error is not None:
            return _SKIP
        try:
            if isinstance(job.route, tuple):
                assert isinstance(job.source, Combined)
                return {part.modality: self._load_single(part) for part in job.source.parts()}
            assert not isinstance(job.source, Combined)
            return self._load_single(job.source)
        except OmniretrieveError as exc:
            return exc
        except Exception as exc:  # a loader bug must still cost only this item
            error = MediaError(describe(job.source), f"could not be loaded ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            return error

    def _load_single(self, part: Text | Image | Audio | Video) -> Any:
        # The loader takes the wrapper itself, so its errors name the input as the user wrote it.
        if isinstance(part, Text):
            return part.text
        if isinstance(part, Image):
            min_side = self.image_min_side
            if min_side is None:
                return self.media.load_image(part)
            return self.media.load_image(part, min_side=min_side)
        if isinstance(part, Audio):
            return self._prepare_audio(self.media.load_audio(part, sampling_rate=self.audio_sampling_rate))
        return self.media.load_video(part, num_frames=self.video_num_frames, size=self.video_frame_size)

    def _encode_chunk(
        self, route: RouteKey, ready: list[tuple[_Job, Any]], pending: list[_Pending], role: Role
    ) -> None:
        inputs = [value for _, value in ready]
        try:
            vectors = self._call_encode(route, inputs, role)
        except Exception as exc:
            if len(ready) == 1:
                self._fail_model(pending[ready[0][0].index], ready[0][0], exc)
                return
            logger.debug("a batch of %d %s inputs failed (%r); retrying one by one", len(ready), route, exc)
            for job, value in ready:
                try:
                    vector = self._call_encode(route, [value], role)[0]
                except Exception as item_exc:
                    self._fail_model(pending[job.index], job, item_exc)
                    continue
                self._store(pending[job.index], job, vector)
            return
        for (job, _), vector in zip(ready, vectors, strict=True):
            self._store(pending[job.index], job, vector)

    def _call_encode(self, route: RouteKey, inputs: list[Any], role: Role) -> np.ndarray:
        vectors = np.asarray(self._encode(route, inputs, role))
        if vectors.ndim != 2 or vectors.shape[0] != len(inputs):
            raise ValueError(f"the model returned shape {vectors.shape} for {len(inputs)} inputs")
        return vectors

    def _store(self, state: _Pending, job: _Job, vector: np.ndarray) -> None:
        if state.error is not None:
            return
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (self.dimension,):
            self._fail(
                state,
                EmbeddingError(
                    describe(job.source),
                    f"the model returned a vector of shape {vector.shape}, expected ({self.dimension},)",
                ),
            )
            return
        if not np.isfinite(vector).all():
            self._fail(
                state,
                EmbeddingError(
                    describe(job.source), "the model returned a non-finite embedding (NaN or Inf)"
                ),
            )
            return
        norm = float(np.linalg.norm(vector))
        if norm < _ZERO_NORM:
            self._fail(
                state, EmbeddingError(describe(job.source), "the model returned an all-zero embedding")
            )
            return
        if state.vectors is None:
            state.vectors = {}
        state.vectors[job.slot] = vector / norm

    @staticmethod
    def _fail(state: _Pending, error: OmniretrieveError) -> None:
        if state.error is None:
            state.error = error
            state.vectors = None

    def _fail_model(self, state: _Pending, job: _Job, exc: Exception) -> None:
        if isinstance(exc, OmniretrieveError):
            self._fail(state, exc)
            return
        error = EmbeddingError(
            describe(job.source), f"the model failed on this input ({type(exc).__name__}: {exc})"
        )
        error.__cause__ = exc
        self._fail(state, error)

    def _finish(self, index: int, state: _Pending) -> EmbeddingResult:
        if state.error is not None:
            return EmbeddingResult(index, state.item, None, state.error)
        assert state.item is not None and state.vectors is not None and len(state.vectors) == state.parts
        if state.parts == 1:
            vector = state.vectors[0]
        else:  # mean of the parts' unit vectors, renormalised
            vector = np.mean([state.vectors[slot] for slot in range(state.parts)], axis=0)
            norm = float(np.linalg.norm(vector))
            if norm < _ZERO_NORM:
                error = EmbeddingError(
                    describe(state.item), "the parts' embeddings cancel out (their mean is zero)"
                )
                return EmbeddingResult(index, state.item, None, error)
            vector = vector / norm
        return EmbeddingResult(index, state.item, vector.astype(np.float32), None)

    @staticmethod
    def _progress(total: int, show: bool) -> Any:
        if not show or total == 0:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm comes with sentence-transformers
            return None
        return tqdm(total=total, desc="Embedding", unit="input")


class _Skip:
    """Marker: the job's item already failed, nothing was loaded."""


_SKIP = _Skip()


def _is_pil(value: object) -> bool:
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(value, pil.Image)


def _text_of(item: NormalizedItem) -> str:
    return item.text if isinstance(item, Text) else ""


# ---------------------------------------------------------------------------------------------
# sentence-transformers
# ---------------------------------------------------------------------------------------------


class SentenceTransformerEmbedder(BaseEmbedder):
    """Embed text, images, audio and video with any sentence-transformers model.

    Load a model by hub id or local directory (or pass a loaded ``SentenceTransformer``); the
    embedder reports what the model reads and routes every item to it, one modality per call.
    Queries go through ``encode_query`` and documents through ``encode_document``, so models with
    query/document prompts use them.

    Inputs are handed to sentence-transformers in forms it can never mistake for something to
    fetch: text as ``{"text": s}`` (a bare string that looks like an image path or URL would be
    opened or downloaded by the library), images as decoded PIL images, audio as
    ``{"array", "sampling_rate"}`` at the model's rate, video as uint8 frame arrays with the model's
    number of frames. Every file and URL is read by the :class:`~omniretrieve.media.MediaLoader`
    under its policy.

    Example::

        embedder = SentenceTransformerEmbedder("path/to/clip-model")
        vectors = embedder.embed(["a red circle", Image("circle.png"),
                                  {"text": "a caption", "image": "photo.jpg"}])
        query = embedder.embed_query("https://example.com/x.png")   # embedded as text, never fetched

    Args:
        model: a hub id, a local model directory, or a loaded ``SentenceTransformer``.
        device: e.g. ``"cpu"``, ``"cuda"``; default: the best available.
        dtype: the weights' dtype, e.g. ``"float16"``, ``"bfloat16"``, ``torch.float16`` or ``"auto"``.
        trust_remote_code: allow model code from the hub (only for models you trust).
        batch_size: inputs per model call.
        media: the media loader; default ``MediaLoader()`` with the default safe policy.
        combine: how combined items are embedded, see :data:`CombineStrategy`.
        show_progress: whether ``embed`` shows a progress bar by default.
        model_kwargs: extra keyword arguments for loading the transformers model.
        processor_kwargs: extra keyword arguments for loading the processor/tokenizer.
        num_workers: threads that load and decode media ahead of the model (0: none).
        draft_images: let the loader decode JPEGs at a reduced scale (1/2, 1/4, 1/8, by DCT
            scaling) when the model's processor downsizes them further anyway: several times
            faster on large photos, with embeddings a hair from those of a full-size decode. False
            gives the model exactly the pixels a full decode gives.
        model_id: The id this embedder reports, which is what a :class:`~omniretrieve.store.Store`
            records and checks: a store refuses an embedder of another id
            (:class:`~omniretrieve.errors.EmbeddingSpaceMismatchError`). Default: the hub id or the
            path as given (for a loaded model, the name it was loaded under). Give a stable name
            when the directory may move (a model inside a virtualenv or a checkout), or when two
            models loaded from one directory make different vectors and must not share a store.

    Raises:
        InvalidInputError: loading options were given together with a loaded model, ``model_id`` is
            empty, or the model reads none of text, image, audio and video.
        MissingDependencyError: sentence-transformers is not installed.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | SentenceTransformer,
        *,
        device: str | None = None,
        dtype: Any = None,
        trust_remote_code: bool = False,
        batch_size: int = 32,
        media: MediaLoader | None = None,
        combine: CombineStrategy = "auto",
        show_progress: bool = False,
        model_kwargs: Mapping[str, Any] | None = None,
        processor_kwargs: Mapping[str, Any] | None = None,
        num_workers: int | None = None,
        draft_images: bool = True,
        model_id: str | None = None,
    ) -> None:
        if model_id is not None and (not isinstance(model_id, str) or not model_id.strip()):
            raise InvalidInputError(
                f"model_id={model_id!r}", "must be a non-empty str, or None for the default"
            )
        super().__init__(
            media=media,
            batch_size=batch_size,
            combine=combine,
            show_progress=show_progress,
            num_workers=num_workers,
        )
        self.draft_images = draft_images
        st = require("sentence_transformers", extra=None, purpose="SentenceTransformerEmbedder")
        if isinstance(model, st.SentenceTransformer):
            given = {
                "device": device,
                "dtype": dtype,
                "trust_remote_code": trust_remote_code or None,
                "model_kwargs": model_kwargs,
                "processor_kwargs": processor_kwargs,
            }
            extra = [name for name, value in given.items() if value is not None]
            if extra:
                raise InvalidInputError(
                    f"{extra}",
                    "these options apply when loading a model by id or path, not to a loaded model",
                )
            self._model = model
            self._model_id = _instance_model_id(model)
        elif isinstance(model, (str, os.PathLike)):
            self._model_id = os.fspath(model)
            kwargs = dict(model_kwargs or {})
            if dtype is not None:
                kwargs["dtype"] = _torch_dtype(dtype)
            self._model = st.SentenceTransformer(
                self._model_id,
                device=device,
                trust_remote_code=trust_remote_code,
                model_kwargs=kwargs or None,
                processor_kwargs=dict(processor_kwargs) if processor_kwargs else None,
            )
        else:
            raise InvalidInputError(
                describe(model), "model must be a hub id, a local directory or a SentenceTransformer"
            )
        if model_id is not None:
            self._model_id = model_id

        raw = list(self._model.modalities)
        self._modalities = frozenset(m for m in raw if isinstance(m, str) and m in MODALITIES)
        if not self._modalities:
            raise InvalidInputError(
                self._model_id, f"the model reads none of {list(MODALITIES)} (it reads {raw})"
            )
        self._dimension = self._find_dimension()
        fn = getattr(self._model, "similarity_fn_name", None) or "cosine"
        if fn != "cosine":
            logger.warning(
                "%s is configured for %r similarity; omniretrieve L2-normalises every vector and compares "
                "by cosine",
                self._model_id,
                fn,
            )
        self._native: dict[tuple[Modality, ...], bool] = {}

    # -- description ---------------------------------------------------------------------------

    @property
    def model(self) -> SentenceTransformer:
        """The underlying ``SentenceTransformer``."""
        return self._model

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def modalities(self) -> frozenset[Modality]:
        return self._modalities

    @property
    def audio_sampling_rate(self) -> int:
        """The model's audio sampling rate (from its feature extractor), 16 kHz if it names none."""
        extractor = self._feature_extractor()
        rate = getattr(extractor, "sampling_rate", None)
        return rate if isinstance(rate, int) and rate > 0 else 16_000

    @property
    def video_num_frames(self) -> int:
        """Frames per video the model reads (from its processor or config), 8 if it names none."""
        processor = self._processor()
        config = getattr(self._model, "config", None)
        candidates = [
            getattr(getattr(processor, "video_processor", None), "num_frames", None),
            getattr(processor, "num_frames", None),
            getattr(config, "num_frames", None),
            getattr(getattr(config, "vision_config", None), "num_frames", None),
        ]
        for value in candidates:
            if isinstance(value, int) and value > 0:
                return value
        return 8

    @property
    def image_min_side(self) -> int | None:
        """The side the model's image processor resizes to (if ``draft_images``), else ``None``."""
        if not self.draft_images:
            return None
        if not hasattr(self, "_image_min_side"):
            self._image_min_side = _processor_min_side(self._image_processor())
        return self._image_min_side

    def _image_processor(self) -> Any:
        processor = self._processor()
        return getattr(processor, "image_processor", None) or processor

    def _find_dimension(self) -> int:
        getter = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = getter()
        if isinstance(dim, int) and dim > 0:
            return dim
        probe: tuple[RouteKey, Any] = ("text", "dimension probe")
        if "text" not in self._modalities:
            from PIL import Image as PILImage

            probe = ("image", PILImage.new("RGB", (32, 32)))
        return int(self._call_encode(probe[0], [probe[1]], "document").shape[1])

    def _processor(self) -> Any:
        try:
            first = self._model[0]
        except (IndexError, KeyError, TypeError):
            return None
        return getattr(first, "processor", None)

    def _feature_extractor(self) -> Any:
        processor = self._processor()
        return getattr(processor, "feature_extractor", None) or processor

    def _supports_native(self, modalities: tuple[Modality, ...]) -> bool:
        if modalities not in self._native:
            # sentence-transformers names combinations in sorted order, e.g. ("image", "text").
            key = tuple(sorted(modalities))
            try:
                self._native[modalities] = bool(self._model.supports(key))
            except Exception:  # pragma: no cover - defensive: an odd model answers no
                self._native[modalities] = False
        return self._native[modalities]

    # -- encoding ------------------------------------------------------------------------------

    def _prepare_audio(self, samples: np.ndarray) -> np.ndarray:
        """Crop clips longer than the model's window to their start.

        Feature extractors that truncate at random (CLAP's ``rand_trunc`` and ``fusion``) would
        otherwise give the same clip a different embedding on every call.
        """
        extractor = self._feature_extractor()
        limit = getattr(extractor, "nb_max_samples", None)
        if getattr(extractor, "truncation", None) in ("rand_trunc", "fusion") and isinstance(limit, int):
            if samples.shape[0] > limit:
                return samples[:limit]
        return samples

    def _wrap(self, route: RouteKey, value: Any) -> Any:
        """One prepared input in the form sentence-transformers reads unambiguously."""
        if isinstance(route, tuple):
            return {m: self._wrap_part(m, value[m]) for m in route}
        return {route: self._wrap_part(route, value)}

    def _wrap_part(self, modality: Modality, value: Any) -> Any:
        if modality == "audio":
            return {"array": value, "sampling_rate": self.audio_sampling_rate}
        return value

    def _encode(self, route: RouteKey, inputs: list[Any], role: Role) -> np.ndarray:
        import torch

        wrapped = [self._wrap(route, value) for value in inputs]
        encode: Callable[..., Any] = (
            self._model.encode_query if role == "query" else self._model.encode_document
        )
        with torch.inference_mode():
            out = encode(
                wrapped,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        return np.asarray(out, dtype=np.float32)


def _processor_min_side(image_processor: Any) -> int | None:
    """How many pixels a side an image processor keeps at least, when that is certain; else None.

    Known for processors that resize to a shortest edge (CLIP-style) or to a fixed height and width
    (SigLIP-style); any other scheme (longest edge, dynamic tiling, no resizing) gives ``None``.
    """
    if image_processor is None or getattr(image_processor, "do_resize", True) is False:
        return None
    size = getattr(image_processor, "size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return size if size > 0 else None
    fields = (
        "shortest_edge",
        "height",
        "width",
        "longest_edge",
        "max_height",
        "max_width",
        "min_pixels",
        "max_pixels",
    )
    if isinstance(size, Mapping):
        given = {k: v for k, v in size.items() if v is not None}
    elif size is not None:  # transformers' SizeDict: every field an attribute, unused ones None
        given = {k: getattr(size, k) for k in fields if getattr(size, k, None) is not None}
    else:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in given.values()):
        return None
    if set(given) == {"shortest_edge"}:
        return int(given["shortest_edge"])
    if set(given) == {"height", "width"}:
        return int(max(given["height"], given["width"]))
    return None


def _instance_model_id(model: Any) -> str:
    card = getattr(model, "model_card_data", None)
    for value in (getattr(card, "model_id", None), getattr(card, "base_model", None)):
        if isinstance(value, str) and value:
            return value
    try:
        config = getattr(model, "config", None)
    except Exception:  # pragma: no cover - a model without a transformers backbone
        config = None
    name = getattr(config, "name_or_path", None) or getattr(config, "_name_or_path", None)
    if isinstance(name, str) and name:
        return name
    return f"sentence-transformers:{type(model).__name__}"


def _torch_dtype(dtype: Any) -> Any:
    if isinstance(dtype, str) and dtype != "auto":
        import torch

        value = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(value, torch.dtype):
            raise InvalidInputError(
                f"dtype={dtype!r}", "not a torch dtype; use e.g. 'float16', 'bfloat16' or 'float32'"
            )
        return value
    return dtype


# ---------------------------------------------------------------------------------------------
# Embedders by name
# ---------------------------------------------------------------------------------------------

DEMO_ALIAS = "demo"
"""The short name :func:`load_embedder` takes for the demo model (:data:`DEMO_MODEL_ID`)."""

DEMO_MODEL_ID = "omniretrieve/demo-clip"
"""The id of the demo model shipped in the package (a toy CLIP, text and image, with a modality gap).

The same wherever the package is installed, so a store built with the demo model opens after the
virtualenv or the checkout moves. Not a hub id: :func:`load_embedder` loads it from the package."""

DEMO_NOGAP_MODEL_ID = "omniretrieve/demo-clip-nogap"
"""The id of the demo model's gap-free twin (``omniretrieve.demo.load_model(gap=False)``).

It differs from :data:`DEMO_MODEL_ID` because its image vectors differ (the gap offset is removed):
a store built with one model refuses the other."""

FAKE_PREFIX = "fake:"
"""``"fake:<dim>"`` names the model-free :class:`~omniretrieve.testing.fakes.FakeEmbedder`."""

_DEMO_SPECS: dict[str, tuple[str, bool]] = {
    DEMO_ALIAS: (DEMO_MODEL_ID, True),
    DEMO_MODEL_ID: (DEMO_MODEL_ID, True),
    DEMO_NOGAP_MODEL_ID: (DEMO_NOGAP_MODEL_ID, False),
}
_LOADING_ONLY = ("model_kwargs", "processor_kwargs", "trust_remote_code", "model_id")


def load_embedder(spec: str | os.PathLike[str], **kwargs: Any) -> Embedder:
    """The embedder a model name or directory stands for.

    ========================================== ===================================================
    ``spec``                                   embedder (its ``model_id``)
    ========================================== ===================================================
    ``"demo"``, ``"omniretrieve/demo-clip"``   the demo model shipped in the package
                                               (:data:`DEMO_MODEL_ID`, the same on every install)
    ``"omniretrieve/demo-clip-nogap"``         its gap-free twin (:data:`DEMO_NOGAP_MODEL_ID`)
    ``"fake:<dim>"``                           :class:`~omniretrieve.testing.fakes.FakeEmbedder`
                                               (``"fake:<dim>"``): content-hash vectors, no model
    anything else                              ``SentenceTransformerEmbedder(spec, **kwargs)``: a
                                               hub id or a local directory (the id as given)
    ========================================== ===================================================

    A path object always names a directory (``Path("demo")`` is a folder called ``demo``). Every
    ``model_id`` this returns is a valid ``spec``, so the id a store records reopens it::

        info = Store.inspect(path="my-store")
        store = Store(load_embedder(info.model_id), path="my-store")

    Args:
        spec: The model's name or directory, see above.
        **kwargs: Options of the embedder built (an option set to ``None`` means its default, so
            adapters can pass their settings through unchanged). A sentence-transformers model takes every option
            of :class:`SentenceTransformerEmbedder`; the demo models take ``device`` (default
            ``"cpu"``), ``dtype`` and the embedding options (``batch_size``, ``media``,
            ``combine``, ``show_progress``, ``num_workers``, ``draft_images``); the fake takes
            those of :class:`~omniretrieve.testing.fakes.FakeEmbedder`.

    Raises:
        InvalidInputError: ``spec`` names nothing that loads: a malformed ``fake:`` spec, a demo
            model missing from the installation, a model that fails to load (the message names
            ``spec`` and the cause is chained); or an option that does not apply to it.
        MissingDependencyError: sentence-transformers (or Pillow, for the demo models) is missing.

    Example::

        embedder = load_embedder("demo")                       # offline, seconds
        embedder.model_id                                      # "omniretrieve/demo-clip"
        clip = load_embedder("sentence-transformers/clip-ViT-B-32", device="cuda", dtype="float16")
    """
    kwargs = {name: value for name, value in kwargs.items() if value is not None}  # None: the default
    if isinstance(spec, os.PathLike):
        return _load_sentence_transformer(os.fspath(spec), kwargs)
    if not isinstance(spec, str) or not spec:
        raise InvalidInputError(
            describe(spec), "name a model: 'demo', 'fake:<dim>', a hub id or a local model directory"
        )
    if spec in _DEMO_SPECS:
        model_id, gap = _DEMO_SPECS[spec]
        return _load_demo(spec, model_id, gap, kwargs)
    if spec.startswith(FAKE_PREFIX):
        return _load_fake(spec, kwargs)
    return _load_sentence_transformer(spec, kwargs)


def _check_options(spec: str, target: Callable[..., Any], kwargs: Mapping[str, Any], *args: Any) -> None:
    import inspect

    try:
        inspect.signature(target).bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidInputError(spec, f"an option does not apply to this model ({exc})") from None


def _load_fake(spec: str, kwargs: dict[str, Any]) -> Embedder:
    from omniretrieve.testing.fakes import FakeEmbedder

    dim = spec[len(FAKE_PREFIX) :]
    if not dim.isascii() or not dim.isdigit() or int(dim) < 1:
        raise InvalidInputError(spec, "write fake:<dimension> with a positive dimension, e.g. fake:32")
    _check_options(spec, FakeEmbedder, kwargs, int(dim))
    return FakeEmbedder(int(dim), **kwargs)


def _load_demo(spec: str, model_id: str, gap: bool, kwargs: dict[str, Any]) -> Embedder:
    options = dict(kwargs)
    refused = [
        name
        for name in _LOADING_ONLY
        if name in options and (options[name] if name != "model_id" else options[name] is not None)
    ]
    if refused:
        raise InvalidInputError(
            spec, f"the demo model takes no {', '.join(refused)} (it loads from the package, with a fixed id)"
        )
    for name in _LOADING_ONLY:
        options.pop(name, None)
    device = options.pop("device", None) or "cpu"
    dtype = options.pop("dtype", None)
    torch_dtype = _torch_dtype(dtype) if dtype is not None and dtype != "auto" else None
    _check_options(spec, SentenceTransformerEmbedder, options, None)
    from omniretrieve.demo import load_model

    try:
        model = load_model(gap=gap, device=device)
        if torch_dtype is not None:
            model.to(torch_dtype)
    except MissingDependencyError:
        raise
    except Exception as exc:  # a missing or broken model directory, an unknown device
        raise InvalidInputError(
            spec,
            f"could not load the demo model ({type(exc).__name__}: {exc}); reinstall omniretrieve, or train "
            "one with `python -m omniretrieve.demo.train --out DIR` and load that directory",
        ) from exc
    return SentenceTransformerEmbedder(model, model_id=model_id, **options)


def _load_sentence_transformer(spec: str, kwargs: dict[str, Any]) -> Embedder:
    _check_options(spec, SentenceTransformerEmbedder, kwargs, spec)
    try:
        return SentenceTransformerEmbedder(spec, **kwargs)
    except OmniretrieveError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            spec,
            f"could not load it ({type(exc).__name__}: {exc}); give a sentence-transformers model id, a "
            f"local model directory, {DEMO_ALIAS!r} or 'fake:<dim>'",
        ) from exc


__all__ = [
    "DEMO_ALIAS",
    "DEMO_MODEL_ID",
    "DEMO_NOGAP_MODEL_ID",
    "FAKE_PREFIX",
    "ROLES",
    "BaseEmbedder",
    "CombineStrategy",
    "Embedder",
    "EmbeddingResult",
    "RouteKey",
    "SentenceTransformerEmbedder",
    "canonical_modalities",
    "load_embedder",
]
