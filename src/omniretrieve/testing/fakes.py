"""A deterministic, model-free embedder: a first-class test double for code that takes an ``Embedder``.

:class:`FakeEmbedder` needs no model, no torch and no network. It goes through the same
:class:`~omniretrieve.embedding.BaseEmbedder` machinery as the real embedder: inputs are
normalised the same way (a plain ``str`` is text), routed by modality, loaded by the same
:class:`~omniretrieve.media.MediaLoader` under the same policy (so a missing file or a refused URL
gives the same typed error), batched, checked and normalised the same way. Only the last step
differs: instead of a model, each input's vector is a seeded random unit vector drawn from a hash of
its content (the text, or the decoded pixels / samples / frames). So:

- the same content always gives the same vector, across calls, processes and machines;
- different content gives (almost surely) different, roughly orthogonal vectors;
- similar content is NOT similar (this is no model): don't test ranking quality with it.

Example::

    from omniretrieve.testing.fakes import FakeEmbedder

    embedder = FakeEmbedder(dimension=8)
    a, b = embedder.embed(["a cat", "a cat"])
    assert (a == b).all() and embedder.calls == [("text", 2, "document")]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.embedding import FAKE_PREFIX, BaseEmbedder, CombineStrategy, RouteKey, canonical_modalities
from omniretrieve.errors import InvalidInputError
from omniretrieve.models import DEFAULT_AUDIO_SAMPLING_RATE, DEFAULT_VIDEO_FRAMES, check_options
from omniretrieve.types import MODALITIES, Modality, Role

if TYPE_CHECKING:
    from omniretrieve.media import MediaLoader


class FakeEmbedder(BaseEmbedder):
    """Content-hash embeddings through the real routing, loading and batching.

    Args:
        dimension: the vector length.
        modalities: the single modalities it pretends to read.
        seed: changes every vector (two fakes with the same seed agree).
        media: the media loader; default ``MediaLoader()`` with the default safe policy.
        batch_size: inputs per (fake) model call.
        combine: how combined items are embedded; the fake reads no combination natively unless
            ``native`` lists it.
        native: combinations (tuples of modalities) to treat as read natively, to exercise that path.
        audio_sampling_rate: the rate audio is resampled to before hashing.
        video_num_frames: frames per video.
        num_workers: threads that load media ahead of the (fake) model (0: none).

    Attributes:
        calls: one ``(route, number of inputs, role)`` per fake model call, in order: what a real
            model would have been asked to encode.
    """

    def __init__(
        self,
        dimension: int = 32,
        modalities: Iterable[Modality] = ("text", "image", "audio", "video"),
        *,
        seed: int = 0,
        media: MediaLoader | None = None,
        batch_size: int = 32,
        combine: CombineStrategy = "auto",
        native: Iterable[tuple[Modality, ...]] = (),
        audio_sampling_rate: int = DEFAULT_AUDIO_SAMPLING_RATE,
        video_num_frames: int = DEFAULT_VIDEO_FRAMES,
        num_workers: int | None = None,
    ) -> None:
        super().__init__(media=media, batch_size=batch_size, combine=combine, num_workers=num_workers)
        if not isinstance(dimension, int) or isinstance(dimension, bool) or dimension < 1:
            raise InvalidInputError(f"dimension={dimension!r}", "must be a positive int")
        mods = frozenset(modalities)
        if not mods or not mods <= set(MODALITIES):
            raise InvalidInputError(
                f"modalities={sorted(mods)!r}", f"must be a non-empty subset of {list(MODALITIES)}"
            )
        self._dimension = dimension
        self._modalities = mods
        self._seed = int(seed)
        self._native_set = frozenset(canonical_modalities(combo) for combo in native)
        self._audio_rate = audio_sampling_rate
        self._num_frames = video_num_frames
        self.calls: list[tuple[RouteKey, int, Role]] = []

    @property
    def model_id(self) -> str:
        return f"{FAKE_PREFIX}{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def modalities(self) -> frozenset[Modality]:
        return self._modalities

    @property
    def audio_sampling_rate(self) -> int:
        return self._audio_rate

    @property
    def video_num_frames(self) -> int:
        return self._num_frames

    def _supports_native(self, modalities: tuple[Modality, ...]) -> bool:
        return modalities in self._native_set

    def _encode(self, route: RouteKey, inputs: list[Any], role: Role) -> np.ndarray:
        self.calls.append((route, len(inputs), role))
        return np.stack([self.vector_for_digest(_digest(route, value)) for value in inputs])

    def vector_for_digest(self, digest: bytes) -> np.ndarray:
        """The unit vector for a content digest (seeded by the digest and this fake's seed)."""
        entropy = [int.from_bytes(digest[i : i + 8], "little") for i in range(0, len(digest), 8)]
        rng = np.random.default_rng([self._seed, *entropy])
        vector = rng.standard_normal(self._dimension)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def load_fake_embedder(spec: str, options: Mapping[str, Any]) -> FakeEmbedder:
    """The :class:`FakeEmbedder` that ``"fake:<dim>"`` names, built with ``options``.

    This is the factory of the ``"fake"`` scheme of :func:`~omniretrieve.embedding.load_embedder`,
    which imports this module only when a ``"fake:<dim>"`` name is loaded.

    Raises:
        InvalidInputError: the dimension is not a positive integer, or an option is not one of
            :class:`FakeEmbedder`'s (the error names ``spec``).
    """
    dim = spec[len(FAKE_PREFIX) :] if spec.startswith(FAKE_PREFIX) else ""
    if not dim.isascii() or not dim.isdigit() or int(dim) < 1:
        raise InvalidInputError(spec, "write fake:<dimension> with a positive dimension, e.g. fake:32")
    check_options(spec, FakeEmbedder, options, int(dim))
    return FakeEmbedder(int(dim), **options)


def _digest(route: RouteKey, value: Any) -> bytes:
    h = hashlib.sha256()
    _feed(h, route, value)
    return h.digest()


def _feed(h: Any, route: RouteKey, value: Any) -> None:
    if isinstance(route, tuple):
        for modality in route:
            _feed(h, modality, value[modality])
        return
    h.update(route.encode() + b"\0")
    if route == "text":
        h.update(value.encode("utf-8", "surrogatepass"))
    elif route == "image":
        h.update(f"{value.mode}:{value.size}".encode())
        h.update(value.tobytes())
    else:
        array = np.ascontiguousarray(value)
        h.update(f"{array.dtype}:{array.shape}".encode())
        h.update(array.tobytes())
    h.update(b"\1")


__all__ = ["FakeEmbedder", "load_fake_embedder"]
