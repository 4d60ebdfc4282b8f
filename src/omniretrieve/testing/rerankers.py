"""A deterministic fake reranker and tiny random-weight reranker models, built offline in seconds.

:class:`FakeReranker` is a first-class test double for code that takes a
:class:`~omniretrieve.rerank.Reranker`: it scores by word overlap (or by a function you give it),
follows the same unsupported-modality policy and result order as the real reranker, and needs no
model, no torch and no media files.

The builders write complete ``CrossEncoder`` directories that
:class:`~omniretrieve.rerank.CrossEncoderReranker` loads with no network:

- :func:`build_tiny_llava_reranker`: a multimodal (text + image) yes/no reranker: a tiny
  ``LlavaForConditionalGeneration`` (CLIP vision tower + Llama text model) whose chat template
  renders the query and document turns and ends in a fixed suffix, scored by a ``LogitScore``
  module as ``logit("yes") - logit("no")`` at the last position.
- :func:`build_tiny_text_reranker`: a text-only ``BertForSequenceClassification`` cross-encoder
  with one output (the classic MS MARCO cross-encoder shape).

The weights are random (seeded), so the scores carry no meaning, but every code path of a real
reranker of that family runs: chat-template rendering, image preprocessing, left padding,
yes/no logit scoring. Example::

    from omniretrieve.rerank import CrossEncoderReranker
    from omniretrieve.testing.rerankers import build_tiny_llava_reranker

    path = build_tiny_llava_reranker(tmp_path / "reranker")
    reranker = CrossEncoderReranker(path)            # modalities: text, image
    reranker.rerank("a red circle", ["a blue square", pil_image, {"text": "...", "image": pil}])
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from omniretrieve.demo.reranker_build import (
    CHAT_TEMPLATE,
    DOCUMENT_HEADER,
    IMAGE_TOKEN,
    QUERY_HEADER,
    SCORE_SUFFIX,
    word_id,
)
from omniretrieve.errors import OmniretrieveError, require
from omniretrieve.rerank import RerankResult, UnsupportedPolicy
from omniretrieve.rerank.rules import (
    check_policy,
    check_query,
    check_top_n,
    order_results,
    split_supported,
    supports_modality,
)
from omniretrieve.types import Combined, ItemInput, Modality, NormalizedItem, Text

_MAX_LENGTH = 256
"""Longest token sequence the tiny reranker accepts (its position table has this size)."""


def build_tiny_llava_reranker(
    path: str | os.PathLike[str],
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 32,
    init_scale: float = 0.5,
    seed: int = 0,
) -> Path:
    """Build and save a tiny multimodal (text + image) yes/no ``CrossEncoder`` reranker.

    The model is a ``LlavaForConditionalGeneration`` with a one-layer CLIP vision tower
    (``image_size`` px, ``patch_size`` px patches, so ``(image_size // patch_size) ** 2`` image
    tokens per image) and a two-layer Llama text model, wrapped as
    ``CrossEncoder(modules=[Transformer(dir, transformer_task="any-to-any"), LogitScore(yes, no)])``.
    The processor's chat template (:data:`CHAT_TEMPLATE`) renders ``query`` and ``document`` turns
    with text and image parts and ends in :data:`SCORE_SUFFIX`; padding is on the left so the
    last position is always the suffix. Building takes about two seconds on one CPU core.

    Args:
        path: directory to write (created; an existing directory is replaced).
        image_size: input image side in pixels.
        patch_size: vision patch side in pixels.
        hidden_size: width of both towers.
        init_scale: standard deviation of the language-model head's weights; larger spreads the
            random scores further apart (the default gives sigmoid scores spread over ~0.2-0.8).
        seed: torch seed for the random weights.

    Returns:
        The directory, loadable with ``CrossEncoder(path)`` or
        :class:`~omniretrieve.rerank.CrossEncoderReranker`.
    """
    torch = require("torch", extra=None, purpose="building a tiny reranker")
    transformers = require("transformers", extra=None, purpose="building a tiny reranker")
    st_modules = require(
        "sentence_transformers.base.modules",
        extra=None,
        purpose="building a tiny reranker",
        package="sentence-transformers",
    )
    ce_module = require(
        "sentence_transformers.cross_encoder",
        extra=None,
        purpose="building a tiny reranker",
        package="sentence-transformers",
    )
    from omniretrieve.testing.models import build_tokenizer

    out = Path(path)
    _replace_dir(out)
    raw = out / "_backbone"

    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [IMAGE_TOKEN, QUERY_HEADER, DOCUMENT_HEADER, SCORE_SUFFIX]}
    )
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = _MAX_LENGTH
    yes_id = word_id(tokenizer, "yes")
    no_id = word_id(tokenizer, "no")
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    image_processor_cls = (
        getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    )
    image_processor = image_processor_cls(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )

    vision = transformers.CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
    text = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=_MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config = transformers.LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(config)
    with torch.no_grad():
        head = model.get_output_embeddings()
        head.weight.normal_(0.0, init_scale)
    model.eval()
    model.save_pretrained(os.fspath(raw))
    processor.save_pretrained(os.fspath(raw))

    backbone = st_modules.Transformer(os.fspath(raw), transformer_task="any-to-any")
    score = ce_module.modules.LogitScore(true_token_id=yes_id, false_token_id=no_id)
    cross_encoder = ce_module.CrossEncoder(modules=[backbone, score], device="cpu")
    cross_encoder.save(os.fspath(out))
    shutil.rmtree(raw)
    return out


def build_tiny_text_reranker(path: str | os.PathLike[str], *, hidden_size: int = 32, seed: int = 0) -> Path:
    """Build and save a tiny text-only ``CrossEncoder`` (``BertForSequenceClassification``, one label).

    Args:
        path: directory to write (created; an existing directory is replaced).
        hidden_size: model width.
        seed: torch seed for the random weights.

    Returns:
        The directory, loadable with ``CrossEncoder(path)`` (modalities: text only).
    """
    torch = require("torch", extra=None, purpose="building a tiny reranker")
    transformers = require("transformers", extra=None, purpose="building a tiny reranker")
    from omniretrieve.testing.models import build_tokenizer

    out = Path(path)
    _replace_dir(out)
    tokenizer = build_tokenizer()
    tokenizer.model_max_length = _MAX_LENGTH
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=_MAX_LENGTH,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(config)
    model.eval()
    model.save_pretrained(os.fspath(out))
    tokenizer.save_pretrained(os.fspath(out))
    return out


def _replace_dir(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


# ---------------------------------------------------------------------------------------------
# FakeReranker
# ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")

ScoreFunction = Callable[[NormalizedItem, NormalizedItem], float]
"""``score_fn(query, document) -> float`` over normalised items; raising an
:class:`~omniretrieve.errors.OmniretrieveError` marks that document as failed."""


def item_words(item: NormalizedItem) -> frozenset[str]:
    """The lower-cased words of an item's text, for :func:`word_overlap`.

    Text and the text part of a :class:`~omniretrieve.types.Combined` item contribute their words;
    a media item given by a path or URL string contributes the words of that string (its file name,
    say), which is read as a name only: nothing is opened or fetched. Other media contribute nothing.
    """
    texts: list[str] = []
    parts: Iterable[object] = item.parts() if isinstance(item, Combined) else [item]
    for part in parts:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(getattr(part, "source", None), (str, os.PathLike)):
            texts.append(os.fspath(part.source))  # type: ignore[attr-defined]
    return frozenset(_WORD.findall(" ".join(texts).lower()))


def word_overlap(query: NormalizedItem, document: NormalizedItem) -> float:
    """Cosine overlap of word sets: ``|q & d| / sqrt(|q| * |d|)``, in ``[0, 1]`` (0 if either is empty)."""
    q, d = item_words(query), item_words(document)
    if not q or not d:
        return 0.0
    return len(q & d) / math.sqrt(len(q) * len(d))


class FakeReranker:
    """A deterministic reranker for tests: no model, no torch, no media loading.

    It scores each (query, document) pair with ``score_fn`` (default :func:`word_overlap`), then
    orders results exactly as :class:`~omniretrieve.rerank.CrossEncoderReranker` does: scored
    documents by score (ties in incoming order), then documents it could not score. It follows the
    same ``unsupported`` policy for documents of a modality outside ``modalities``.

    Example::

        reranker = FakeReranker()
        reranker.rerank("red circle", ["a blue square", "a red circle"])
        # [RerankResult(index=1, score=1.0), RerankResult(index=0, score=0.0)]

        # Any scoring rule; an OmniretrieveError raised for a document marks it failed
        reranker = FakeReranker(lambda q, d: float(len(d.text)), modalities=("text",))

    Args:
        score_fn: ``score_fn(query, document) -> float`` on normalised items.
        modalities: the single modalities this fake "model" reads; combined items are read when
            all their parts are.
        model_id: reported as :attr:`model_id`.
        unsupported: the policy for documents of an unreadable modality (see
            :class:`~omniretrieve.rerank.CrossEncoderReranker`).
    """

    def __init__(
        self,
        score_fn: ScoreFunction | None = None,
        *,
        modalities: Sequence[Modality] = ("text", "image"),
        model_id: str = "fake-reranker",
        unsupported: UnsupportedPolicy = "keep_last",
    ) -> None:
        self.score_fn: ScoreFunction = score_fn or word_overlap
        self.modalities: frozenset[Modality] = frozenset(modalities)
        self.model_id = model_id
        check_policy(unsupported)
        self.unsupported: UnsupportedPolicy = unsupported
        self.calls: list[tuple[NormalizedItem, list[NormalizedItem]]] = []
        """Every ``rerank`` call's normalised query and documents, for assertions in tests."""

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        return supports_modality(modality, self.modalities, combined=True)

    def rerank(
        self, query: ItemInput, candidates: Sequence[ItemInput], *, top_n: int | None = None
    ) -> list[RerankResult]:
        """Score every candidate against ``query`` and return results sorted by score, best first."""
        check_top_n(top_n)
        q = check_query(query, self.supports, self.modalities)
        docs, results = split_supported(candidates, self.supports, self.modalities, self.unsupported)
        self.calls.append((q, [d for _, d in docs]))
        for index, doc in docs:
            try:
                score = float(self.score_fn(q, doc))
            except OmniretrieveError as exc:
                results.append(RerankResult(index, float("-inf"), exc))
                continue
            results.append(RerankResult(index, score))
        return order_results(results, top_n)


__all__ = [
    "CHAT_TEMPLATE",
    "SCORE_SUFFIX",
    "FakeReranker",
    "ScoreFunction",
    "build_tiny_llava_reranker",
    "build_tiny_text_reranker",
    "item_words",
    "word_overlap",
]
