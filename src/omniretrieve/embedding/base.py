"""The routing, media loading, batching and error isolation every embedder shares (:class:`BaseEmbedder`).

What ``embed_each`` does, for any model:

1. every input is normalised with :func:`~omniretrieve.types.as_item` (a plain ``str`` is always
   text, never a path or URL to fetch);
2. items are routed by modality; an item whose modality the model lacks gets an
   :class:`~omniretrieve.errors.UnsupportedModalityError`;
3. media are loaded under the :class:`~omniretrieve.media.MediaLoader`'s policy (which paths and
   URLs may be read; the default refuses URLs) ahead of the model, at most
   :data:`LOAD_AHEAD_CHUNKS` batches ahead: files, bytes and data URIs in worker processes
   (:class:`~omniretrieve.media._workers.DecodePool`, ``decode_workers``) once a call holds enough
   of them, the rest in a small thread pool; a media error marks only that item. A pipeline
   (``Store.add``) starts the next batch's loading with :meth:`BaseEmbedder.load_ahead` while it
   encodes this one with :meth:`BaseEmbedder.encode_loaded`;
4. each modality is encoded in batches of ``batch_size``, one modality per model call; when a
   batch fails, its items are retried one by one so the failing item is isolated
   (:func:`~omniretrieve.models.batch_then_isolate`);
5. every vector is checked (:func:`~omniretrieve.vectors.vector_problem`: finite, non-zero),
   L2-normalised, cast to float32 and put back in input order.

Combined items (``{"text": ..., "image": ...}``) are embedded natively when the model reads that
combination in one input; otherwise (``combine="mean"``, or ``"auto"`` without native support) as
the L2-normalised mean of their parts' normalised embeddings.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from omniretrieve.embedding.jobs import (
    PROCESS_MIN_ITEMS,
    InWorkers,
    Job,
    Later,
    Loading,
    Loads,
    Pending,
    chunked,
    parts_of,
    plan,
    pool_for,
)
from omniretrieve.embedding.protocol import (
    ROLES,
    CombineStrategy,
    EmbeddingResult,
    RouteKey,
    canonical_modalities,
)
from omniretrieve.errors import (
    InvalidInputError,
    MediaError,
    OmniretrieveError,
    UnsupportedModalityError,
)
from omniretrieve.media._workers import DecodePool, DecodeSpec, worker_decodable
from omniretrieve.models import DEFAULT_AUDIO_SAMPLING_RATE, DEFAULT_VIDEO_FRAMES, batch_then_isolate
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
    describe,
    is_pil_image,
)

if TYPE_CHECKING:
    from omniretrieve.media import MediaLoader

LOAD_AHEAD_CHUNKS = 2
"""Model calls whose inputs ``embed_each`` loads ahead of the one being encoded (bounds memory)."""


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
        decode_workers: worker processes that decode media files (see :meth:`load_ahead`); 0:
            never; ``None``: one per CPU once a call holds :data:`PROCESS_MIN_ITEMS` media.

    Attributes:
        decode_workers: as the argument; may be changed between calls.
    """

    def __init__(
        self,
        *,
        media: MediaLoader | None = None,
        batch_size: int = 32,
        combine: CombineStrategy = "auto",
        show_progress: bool = False,
        num_workers: int | None = None,
        decode_workers: int | None = None,
    ) -> None:
        if decode_workers is not None and (
            isinstance(decode_workers, bool) or not isinstance(decode_workers, int) or decode_workers < 0
        ):
            raise InvalidInputError(f"decode_workers={decode_workers!r}", "must be an int >= 0 or None")
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
        self.decode_workers = decode_workers
        self._decode_pool: DecodePool | None = None

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
        return DEFAULT_AUDIO_SAMPLING_RATE

    @property
    def video_num_frames(self) -> int:
        """How many frames of each video reach the model (sampled evenly over the video)."""
        return DEFAULT_VIDEO_FRAMES

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

    def _prepare_text(self, text: str) -> str:
        """Last change to a text before the model sees it (a subclass cuts what it cannot read)."""
        return text

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
        loading = self._start_loading(_checked(items, role), role, None, LOAD_AHEAD_CHUNKS)
        return self._finish(loading, self.show_progress if show_progress is None else show_progress)

    def load_ahead(
        self, items: Sequence[ItemInput], *, role: Role = "document", workers: int | None = None
    ) -> Loading:
        """Start loading the items' media now; :meth:`encode_loaded` encodes them later.

        Media files, bytes and ``data:`` URIs are decoded in worker processes (``workers``: how
        many; 0 decodes in this process's threads; ``None``: :attr:`decode_workers`, else one per
        CPU once enough media come), others in threads. Every item's media load at once, so keep
        ``items`` to a batch: a pipeline starts the next batch's loading while it encodes this one.

        Raises:
            InvalidInputError: as :meth:`embed_each`.
        """
        return self._start_loading(_checked(items, role), role, workers, None)

    def encode_loaded(self, loading: Loading, *, show_progress: bool | None = None) -> list[EmbeddingResult]:
        """Encode what :meth:`load_ahead` started: one result per item, in order (as :meth:`embed_each`)."""
        return self._finish(loading, self.show_progress if show_progress is None else show_progress)

    def _finish(self, loading: Loading, show: bool) -> list[EmbeddingResult]:
        progress = _progress_bar(loading.loads.jobs, show)
        try:
            self._run(loading, progress)
        finally:
            if progress is not None:
                progress.close()
        return [state.result(i) for i, state in enumerate(loading.pending)]

    # -- planning ------------------------------------------------------------------------------

    def _combine_route(self, mods: tuple[Modality, ...]) -> Literal["native", "mean"] | None:
        """How a combination is embedded by this model, or ``None`` if it cannot be."""
        if self.combine in ("auto", "native") and self._supports_native(mods):
            return "native"
        if self.combine in ("auto", "mean") and all(m in self.modalities for m in mods):
            return "mean"
        return None

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

    def _run(self, loading: Loading, progress: Any) -> None:
        pending = loading.pending
        try:
            for route, chunk, handles in loading.loads:
                ready: list[tuple[Job, Any]] = []
                for job, handle in zip(chunk, handles, strict=True):
                    outcome = self._resolve(job, handle, pending)
                    if isinstance(outcome, OmniretrieveError):
                        pending[job.index].fail(outcome)
                    elif outcome is not _SKIP:
                        ready.append((job, outcome))
                del handles
                if ready:
                    self._encode_chunk(route, ready, pending, loading.role)
                if progress is not None:
                    progress.update(len(chunk))
        finally:
            loading.close()

    def _start_loading(
        self, items: Sequence[ItemInput], role: Role, workers: int | None, ahead: int | None
    ) -> Loading:
        """Plan the items and start loading their media (see :meth:`load_ahead`)."""
        pending, jobs = plan(list(items), self.modalities, self._combine_route, self._unsupported)
        chunks = chunked(jobs, self.batch_size)
        media = [job for job in jobs if job.route != "text"]
        pool = self._process_pool(media, workers)
        threads = ThreadPoolExecutor(self.num_workers) if media and self.num_workers > 0 else None
        spec = self.decode_spec() if pool is not None else None

        def start(job: Job) -> Any:
            if pending[job.index].error is not None:
                return _SKIP
            if pool is not None and spec is not None:
                parts = parts_of(job.source)
                futures: dict[str, Future[Any]] = {
                    p.modality: pool.submit(spec, p.modality, p.source, describe(p))  # type: ignore[arg-type]
                    for p in parts
                    if isinstance(p, Image | Audio | Video) and worker_decodable(p.source)
                }
                if futures:
                    return InWorkers(futures, pool, spec)
            if threads is not None and job.route != "text":
                return threads.submit(self._load_job, job, pending)
            return Later()

        return Loading(pending, Loads(chunks, start, ahead), role, threads)

    def _resolve(self, job: Job, handle: Any, pending: list[Pending]) -> Any:
        """The prepared model input for a job from its loading handle (or the error, or ``_SKIP``)."""
        if isinstance(handle, Future):
            return handle.result()
        if isinstance(handle, InWorkers):
            return self._load_job(job, pending, handle)
        if isinstance(handle, Later):
            return self._load_job(job, pending)
        return handle

    def _process_pool(self, media: list[Job], workers: int | None) -> DecodePool | None:
        """The decoding processes for this call's media, or ``None`` (see :func:`.jobs.pool_for`)."""
        from omniretrieve.media import MediaLoader

        if type(self.media) is not MediaLoader:  # a custom loader's overrides must not be bypassed
            return None
        self._decode_pool = pool_for(
            self._decode_pool, media, self.decode_workers if workers is None else workers
        )
        if self._decode_pool is None or self._decode_pool.unusable or not media or workers == 0:
            return None
        return self._decode_pool

    def decode_spec(self) -> DecodeSpec:
        """How this model's media are decoded, for worker processes (the loader's policy included)."""
        return DecodeSpec(
            policy=self.media.policy,
            image_min_side=self.image_min_side,
            audio_sampling_rate=self.audio_sampling_rate,
            video_num_frames=self.video_num_frames,
            video_frame_size=self.video_frame_size,
        )

    def close_workers(self) -> None:
        """Stop the decoding processes, if any run (a later call starts them again when needed)."""
        if self._decode_pool is not None:
            self._decode_pool.close()
            self._decode_pool = None

    def _load_job(self, job: Job, pending: list[Pending], decoded: InWorkers | None = None) -> Any:
        """The prepared model input for a job, ``_SKIP`` if its item already failed, or the error.

        ``decoded``: the parts decoding in worker processes (the others are loaded here).
        """
        if pending[job.index].error is not None:
            return _SKIP
        load = (
            self._load_single if decoded is None else decoded.loader(self._load_single, self._prepare_audio)
        )
        try:
            if isinstance(job.route, tuple):
                assert isinstance(job.source, Combined)
                return {part.modality: load(part) for part in job.source.parts()}
            assert not isinstance(job.source, Combined)
            return load(job.source)
        except OmniretrieveError as exc:
            return exc
        except Exception as exc:  # a loader bug must still cost only this item
            error = MediaError(describe(job.source), f"could not be loaded ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            return error

    def _load_single(self, part: Text | Image | Audio | Video) -> Any:
        # The loader takes the wrapper itself, so its errors name the input as the user wrote it.
        if isinstance(part, Text):
            return self._prepare_text(part.text)
        if isinstance(part, Image):
            min_side = self.image_min_side
            if min_side is None:
                return self.media.load_image(part)
            return self.media.load_image(part, min_side=min_side)
        if isinstance(part, Audio):
            return self._prepare_audio(self.media.load_audio(part, sampling_rate=self.audio_sampling_rate))
        return self.media.load_video(part, num_frames=self.video_num_frames, size=self.video_frame_size)

    def _encode_chunk(
        self, route: RouteKey, ready: list[tuple[Job, Any]], pending: list[Pending], role: Role
    ) -> None:
        outcomes = batch_then_isolate(
            [value for _, value in ready],
            lambda inputs: self._call_encode(route, inputs, role),
            what=f"{route} inputs",
        )
        for (job, _), outcome in zip(ready, outcomes, strict=True):
            if isinstance(outcome, Exception):
                pending[job.index].fail_model(job, outcome)
            else:
                pending[job.index].accept(job, outcome, self.dimension)

    def _call_encode(self, route: RouteKey, inputs: list[Any], role: Role) -> np.ndarray:
        vectors = np.asarray(self._encode(route, inputs, role))
        if vectors.ndim != 2 or vectors.shape[0] != len(inputs):
            raise ValueError(f"the model returned shape {vectors.shape} for {len(inputs)} inputs")
        return vectors


def _progress_bar(total: int, show: bool) -> Any:
    if not show or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with sentence-transformers
        return None
    return tqdm(total=total, desc="Embedding", unit="input")


def _checked(items: Sequence[ItemInput], role: Role) -> list[ItemInput]:
    """The items as a list, once ``items`` and ``role`` are checked."""
    if role not in ROLES:
        raise InvalidInputError(f"role={role!r}", "must be 'query' or 'document'")
    if (
        isinstance(items, (str, bytes, Mapping, np.ndarray))
        or not isinstance(items, Iterable)
        or is_pil_image(items)
    ):
        raise InvalidInputError(
            describe(items),
            "embed takes a list of items: wrap a single item in a list, or use embed_query",
        )
    return list(items)


class _Skip:
    """Marker: the job's item already failed, nothing was loaded."""


_SKIP = _Skip()


__all__ = ["PROCESS_MIN_ITEMS", "BaseEmbedder", "Loading"]
