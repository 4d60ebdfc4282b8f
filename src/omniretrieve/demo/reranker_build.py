"""Build the demo reranker's network: a tiny LLaVA (the demo CLIP's vision tower + a small Llama).

The result is a sentence-transformers ``CrossEncoder`` of two modules,
``Transformer(dir, transformer_task="any-to-any")`` and ``LogitScore(yes, no)``: the processor's
chat template (:data:`CHAT_TEMPLATE`) renders a ``query`` turn and a ``document`` turn (text and
image parts, in order) and ends in :data:`SCORE_SUFFIX`; the score of a pair is
``logit("yes") - logit("no")`` at that last position. Padding is on the left, so the last
position is always the suffix. Trained by :mod:`omniretrieve.demo.train_reranker`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder
    from transformers import PreTrainedTokenizerFast

    from omniretrieve.demo.train_reranker import RerankerTrainConfig

QUERY_HEADER = "<|query|>"
DOCUMENT_HEADER = "<|document|>"
SCORE_SUFFIX = "<|relevant|>"
"""The fixed suffix every rendered (query, document) prompt ends in; the next-token logits of
``yes`` and ``no`` after it give the score."""

IMAGE_TOKEN = "<image>"

CHAT_TEMPLATE = "".join(
    [
        "{{ bos_token }}",
        "{% for message in messages %}",
        "{% if message['role'] == 'query' %}" + QUERY_HEADER,
        "{% elif message['role'] == 'document' %}" + DOCUMENT_HEADER,
        "{% else %}<|{{ message['role'] }}|>{% endif %}",
        "{% if message['content'] is string %}{{ message['content'] }}",
        "{% else %}{% for part in message['content'] %}",
        "{% if part['type'] == 'image' %}" + IMAGE_TOKEN,
        "{% elif part['type'] == 'text' %}{{ part['text'] }}",
        "{% endif %}{% endfor %}{% endif %}",
        "{% endfor %}" + SCORE_SUFFIX,
    ]
)
"""Renders ``query`` and ``document`` turns (text and image parts, in order) and ends in
:data:`SCORE_SUFFIX`. Any other role (e.g. a ``system`` prompt) is rendered as ``<|role|>``."""

MAX_LENGTH = 128
"""Longest token sequence the demo reranker accepts (its position table has this size)."""


def word_id(tokenizer: Any, word: str) -> int:
    """The id of the single token ``word`` is written as (``"Ġyes"`` with a byte-level prefix space).

    Raises:
        InvalidInputError: the word is split or unknown (a yes/no head over an unknown token
            would score every pair 0).
    """
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise InvalidInputError(repr(word), f"the tokenizer has no single token for it (got ids {ids})")
    return int(ids[0])


def prepare_tokenizer(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Add the reranker's special tokens, pad on the left and cap the length at :data:`MAX_LENGTH`."""
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [IMAGE_TOKEN, QUERY_HEADER, DOCUMENT_HEADER, SCORE_SUFFIX]}
    )
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer


def build_llava_cross_encoder(
    folder: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerFast,
    *,
    vision_config: dict[str, Any],
    vision_state: dict[str, Any] | None = None,
    image_processor: Any = None,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 4,
    seed: int = 0,
    head_scale: float | None = None,
    init_range: float = 0.02,
    vision_feature_layer: int | list[int] = -1,
    vision_feature_select_strategy: str = "default",
) -> CrossEncoder:
    """A freshly initialised LLaVA yes/no ``CrossEncoder``, built through a directory and loaded back.

    Args:
        folder: Scratch directory for the backbone (replaced, removed again afterwards).
        tokenizer: A tokenizer passed through :func:`prepare_tokenizer` (holding ``yes`` and ``no``).
        vision_config: ``CLIPVisionConfig`` settings of the vision tower.
        vision_state: Weights for the vision tower (a ``CLIPVisionModel`` state dict), or None to
            keep the random ones.
        image_processor: The image processor (default a CLIP one at the vision tower's size).
        hidden_size: Width of the Llama text model.
        num_layers: Layers of the Llama text model.
        num_heads: Attention heads of the Llama text model.
        seed: Torch seed of the random weights.
        head_scale: Standard deviation to re-draw the language-model head with (None keeps it).
        init_range: Standard deviation of the text model's initial weights (larger than the
            transformers default of 0.02 shortens the plateau a tiny model starts on).
        vision_feature_layer: The vision tower's layer (or layers, concatenated) whose tokens
            reach the projector (``-1``: the last).
        vision_feature_select_strategy: ``"default"`` drops the vision tower's class token,
            ``"full"`` keeps it (one more image token: the summary the CLIP was trained on).

    Returns:
        The ``CrossEncoder`` (on CPU, its modules ``Transformer`` and ``LogitScore``).
    """
    torch = require("torch", extra=None, purpose="building the demo reranker")
    transformers = require("transformers", extra=None, purpose="building the demo reranker")
    st_modules = require(
        "sentence_transformers.base.modules",
        extra=None,
        purpose="building the demo reranker",
        package="sentence-transformers",
    )
    ce_module = require(
        "sentence_transformers.cross_encoder",
        extra=None,
        purpose="building the demo reranker",
        package="sentence-transformers",
    )
    image_size = int(vision_config["image_size"])
    patch_size = int(vision_config["patch_size"])
    if image_processor is None:
        image_processor = transformers.CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy=vision_feature_select_strategy,
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    text = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        initializer_range=init_range,
    )
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(**vision_config),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
        initializer_range=init_range,
    )
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(config)
    if vision_state is not None:
        model.model.vision_tower.load_state_dict(vision_state)
    if head_scale is not None:
        with torch.no_grad():
            model.get_output_embeddings().weight.normal_(0.0, head_scale)
    raw = Path(folder)
    if raw.exists():
        shutil.rmtree(raw)
    model.save_pretrained(os.fspath(raw))
    processor.save_pretrained(os.fspath(raw))
    backbone = st_modules.Transformer(os.fspath(raw), transformer_task="any-to-any")
    score = ce_module.modules.LogitScore(
        true_token_id=word_id(tokenizer, "yes"), false_token_id=word_id(tokenizer, "no")
    )
    cross_encoder = ce_module.CrossEncoder(modules=[backbone, score], device="cpu")
    shutil.rmtree(raw)
    return cross_encoder


def inner_model(cross_encoder: Any) -> Any:
    """The ``LlavaForConditionalGeneration`` inside a demo reranker ``CrossEncoder``."""
    model = getattr(cross_encoder[0], "model", None)
    if model is None or not hasattr(model, "model") or not hasattr(model.model, "vision_tower"):
        raise InvalidInputError("cross_encoder", "holds no LLaVA model; pass a demo reranker")
    return model


def parameter_count(cross_encoder: Any, names: Sequence[str] = ()) -> int:
    """Parameters of the reranker (only those whose name starts with one of ``names``, if given)."""
    model = inner_model(cross_encoder)
    return sum(p.numel() for n, p in model.named_parameters() if not names or n.startswith(tuple(names)))


def _vision_parts(transformers: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """The shipped demo CLIP's vision config, vision-tower weights and image processor."""
    from omniretrieve.demo.loading import model_path

    path = model_path()
    clip = transformers.CLIPModel.from_pretrained(str(path), local_files_only=True)
    vc = clip.config.vision_config
    keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "image_size",
        "patch_size",
    )
    config = {k: getattr(vc, k) for k in keys} | {
        "hidden_act": vc.hidden_act,
        "layer_norm_eps": vc.layer_norm_eps,
    }
    state = dict(clip.vision_model.state_dict())
    processor = transformers.CLIPImageProcessor.from_pretrained(str(path), local_files_only=True)
    return config, state, processor


def build_reranker(config: RerankerTrainConfig, scratch: Path) -> Any:
    """The untrained reranker of ``config``: tokenizer, LLaVA with the demo CLIP's vision tower.

    The vision tower is frozen but for its last ``config.trained_vision_layers`` layers.
    """
    transformers = require("transformers", extra=None, purpose="training the demo reranker")
    from omniretrieve.demo.train import build_tokenizer
    from omniretrieve.demo.train_reranker import tokenizer_texts

    tokenizer = prepare_tokenizer(build_tokenizer(1000, texts=tokenizer_texts()))
    vision_config, vision_state, image_processor = _vision_parts(transformers)
    cross_encoder = build_llava_cross_encoder(
        scratch,
        tokenizer,
        vision_config=vision_config,
        vision_state=vision_state,
        image_processor=image_processor,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        seed=config.seed,
        init_range=config.init_range,
        vision_feature_layer=list(config.vision_layers)
        if len(config.vision_layers) > 1
        else config.vision_layers[0],
        vision_feature_select_strategy=config.vision_strategy,
    )
    tower = inner_model(cross_encoder).model.vision_tower
    for p in tower.parameters():
        p.requires_grad_(False)
    layers = tower.encoder.layers
    for layer in (
        list(layers)[len(layers) - config.trained_vision_layers :] if config.trained_vision_layers else []
    ):
        for p in layer.parameters():
            p.requires_grad_(True)
    return cross_encoder


__all__ = [
    "CHAT_TEMPLATE",
    "DOCUMENT_HEADER",
    "IMAGE_TOKEN",
    "MAX_LENGTH",
    "QUERY_HEADER",
    "SCORE_SUFFIX",
    "build_llava_cross_encoder",
    "build_reranker",
    "inner_model",
    "parameter_count",
    "prepare_tokenizer",
    "word_id",
]
