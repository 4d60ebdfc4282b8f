"""Device preprocessing (embedding/_device_images.py, models/tensor_preprocess.py), exercised on the CPU.

The probe accepts the demo CLIP's processor (and the bilinear and fixed-size variants) with every
probe cosine >= 0.999; it refuses a processor it cannot reproduce, whether its configuration says
so (a Lanczos filter, an extra step) or only its code does (a subclass that feeds the model BGR);
and ``Store.add`` through the tensor path stores the processor path's vectors within that cosine.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from omniretrieve.demo import load_model
from omniretrieve.embedding import SentenceTransformerEmbedder, load_embedder
from omniretrieve.embedding._device_images import PROBE_MIN_COSINE, probe_images
from omniretrieve.models.preprocessing import processor_of
from omniretrieve.models.tensor_preprocess import plan_for
from omniretrieve.store import Store
from omniretrieve.types import Image


class _Bgr(CLIPImageProcessorPil):
    """A processor whose configuration reads like CLIP's but whose code feeds the model BGR."""

    def _preprocess(self, images: list[Any], **kwargs: Any) -> Any:
        return super()._preprocess([image[::-1].copy() for image in images], **kwargs)


def _with_processor(cls: type = CLIPImageProcessorPil, **changes: Any) -> SentenceTransformerEmbedder:
    """The demo model with its image processor rebuilt from its configuration plus ``changes``."""
    model = load_model(gap=True, device="cpu")
    processor = processor_of(model)
    config = {k: v for k, v in processor.image_processor.to_dict().items() if k != "image_processor_type"}
    processor.image_processor = cls(**{**config, **changes})
    return SentenceTransformerEmbedder(model, device_preprocessing=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


@pytest.mark.parametrize(
    "changes",
    [
        {},  # the demo model's own processor: bicubic, shortest edge, centre crop
        {"resample": 2},  # bilinear
        {"size": {"height": 32, "width": 32}, "do_center_crop": False},  # SigLIP-style fixed size
    ],
    ids=["demo", "bilinear", "fixed-size"],
)
def test_the_probe_accepts_processors_it_reproduces(changes: dict[str, Any]) -> None:
    embedder = _with_processor(**changes)
    probe = embedder.device_images.probe
    assert probe.accepted, probe.reason
    assert probe.min_cosine is not None and probe.min_cosine >= PROBE_MIN_COSINE
    assert not probe.gpu_jpeg and probe.gpu_jpeg_reason is None  # no CUDA here, and it was not forced
    # fresh images (not the probe's), through embed: the tensor path against the processor
    images = probe_images(seed=7)
    ours = embedder.embed(images)
    assert embedder.device_images.seconds.images == len(images)  # they did go the tensor path
    embedder.device_images.setting = False
    theirs = embedder.embed(images)
    assert _cosines(ours, theirs).min() >= PROBE_MIN_COSINE


@pytest.mark.parametrize(
    ("cls", "changes", "reason"),
    [
        (CLIPImageProcessorPil, {"resample": 1}, "resampling filter"),  # Lanczos
        (CLIPImageProcessorPil, {"do_flip_channel_order": True}, "do_flip_channel_order"),
        (CLIPImageProcessorPil, {"size": {"shortest_edge": 24}}, "would pad"),
        (_Bgr, {}, "probe cosine"),  # only measuring shows it
    ],
    ids=["lanczos", "extra-step", "crop-pads", "bgr-code"],
)
def test_the_probe_refuses_what_it_cannot_reproduce(
    cls: type, changes: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="omniretrieve.embedding._device_images"):
        embedder = _with_processor(cls, **changes)
        images = probe_images(seed=5)
        vectors = embedder.embed(images)
        embedder.embed(images)
    probe = embedder.device_images.probe
    assert not probe.accepted and reason in (probe.reason or "")
    if cls is _Bgr:
        assert probe.min_cosine is not None and probe.min_cosine < PROBE_MIN_COSINE
    logged = [r for r in caplog.records if "device preprocessing is off" in r.getMessage()]
    assert len(logged) == 1 and reason in logged[0].getMessage()  # one logged reason
    assert embedder.device_images.seconds.images == 0  # the processor did the work
    assert vectors.shape == (len(images), embedder.dimension)


def test_plans_follow_the_processor_configuration() -> None:
    base = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    plan = plan_for(base)
    assert not isinstance(plan, str)
    assert plan.mode == "bicubic" and plan.crop == (32, 32) and plan.scale == pytest.approx(1 / 255)
    assert plan.resized_size(480, 640) == (32, 42) and plan.resized_size(500, 300) == (53, 32)
    assert "varies" in str(plan_for(CLIPImageProcessorPil(size={"shortest_edge": 32}, do_center_crop=False)))
    assert "longest" in str(plan_for(CLIPImageProcessorPil(size={"longest_edge": 32}, do_center_crop=False)))
    assert "no image processor" in str(plan_for(None))


def test_off_by_default_on_the_cpu() -> None:
    embedder = load_embedder("demo")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert not embedder.device_images.wanted and not embedder.device_images.active()
    assert embedder.decode_spec().jpeg_passthrough is False
    with pytest.raises(Exception, match="True, False or None"):
        load_embedder("demo", device_preprocessing="yes")


def _photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    paths = []
    for i in range(n):
        width, height = (96, 64) if i % 3 else (50, 80)
        base = rng.integers(0, 256, (1, 1, 3)) * np.ones((height, width, 1))
        pixels = np.clip(base + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)
        path = folder / f"photo{i:03d}.jpg"
        PILImage.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def test_store_add_through_the_tensor_path_matches_the_processor_path(tmp_path: Path) -> None:
    paths = _photos(tmp_path / "photos", 24)
    items: list[Any] = [Image(p) for p in paths]
    items.insert(9, "a caption among the photos")
    tensor = load_embedder("demo", device_preprocessing=True, batch_size=8)
    plain = load_embedder("demo", batch_size=8)
    assert isinstance(tensor, SentenceTransformerEmbedder)
    with Store(tensor, path=tmp_path / "tensor") as ours, Store(plain, path=tmp_path / "plain") as theirs:
        before = tensor.device_images.seconds.images  # the store may embed a probe of its own
        added = ours.add(items, workers=2)
        through_tensors = tensor.device_images.seconds.images - before
        reference = theirs.add(items, workers=0)
        assert [r.status for r in added] == ["added"] * len(items)
        assert [r.id for r in added] == [r.id for r in reference]
        ids = [r.id for r in added]
        a, b = ours.get_vectors(ids), theirs.get_vectors(ids)
    assert tensor.device_images.probe.accepted and through_tensors == len(paths)
    assert all(v is not None for v in a) and all(v is not None for v in b)
    cos = _cosines(np.stack(a), np.stack(b))  # type: ignore[arg-type]
    assert cos.min() >= PROBE_MIN_COSINE, cos.min()


def test_an_undecoded_jpeg_on_the_processor_path_is_decoded_on_the_cpu() -> None:
    from omniretrieve.media import MediaPolicy
    from omniretrieve.media._gpu_decode import EncodedJpeg
    from omniretrieve.media._image import decode_image

    embedder = load_embedder("demo")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    buffer = io.BytesIO()
    probe_images(seed=2)[0].save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    jpeg = EncodedJpeg(data, 640, 480, "photo.jpg")
    decoded = decode_image(data, MediaPolicy(), "photo.jpg", embedder.image_min_side)
    got = embedder._encode("image", [jpeg], "document")
    np.testing.assert_allclose(got, embedder._encode("image", [decoded], "document"), atol=1e-6)
    wrapped = embedder._wrap(("image", "text"), {"image": jpeg, "text": "a photo"})  # a native combination
    assert isinstance(wrapped["image"], PILImage.Image) and wrapped["image"].size == decoded.size


def test_device_tensors_and_host_images_of_one_size_give_the_same_pixels() -> None:
    import torch

    from omniretrieve.models.tensor_preprocess import TensorPreprocessor

    plan = plan_for(CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    assert not isinstance(plan, str)
    pre = TensorPreprocessor(plan, torch.device("cpu"), torch.float32)
    images = probe_images()
    arrays = [np.array(image) for image in images]
    tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]  # as nvJPEG gives them
    mixed = [tensors[k] if k % 2 else images[k] for k in range(len(images))] + [tensors[0]]
    assert torch.equal(pre(mixed), pre([*arrays, arrays[0]]))
