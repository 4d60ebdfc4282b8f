"""Tiny random-weight models, built offline in about a second, for tests, examples and benchmarks.

Each builder writes a complete model directory that ``SentenceTransformer(path)`` (and so
:class:`~omniretrieve.embedding.SentenceTransformerEmbedder`) loads with no network: weights,
config, tokenizer and processor. The weights are random (seeded), so the embeddings carry no
meaning, but every code path of a real model of that family runs: tokenisation, image
preprocessing, mel spectrograms, video frames, projection heads.

Example::

    from omniretrieve.testing.models import build_tiny_clip
    from omniretrieve.embedding import SentenceTransformerEmbedder

    path = build_tiny_clip(tmp_path / "clip")
    embedder = SentenceTransformerEmbedder(path)      # modalities: text, image

Other families (a tiny reranker, for instance) live in sibling modules of this package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omniretrieve.errors import require

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN)

_COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white", "gray", "pink", "brown")
_SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "line", "dot", "ring", "box")
_POSITIONS = ("left", "right", "top", "bottom", "center", "corner", "middle", "upper", "lower")
_WORDS = (
    "a an the of in on at with and or to is are this that photo picture image drawing sound audio clip "
    "video movie frame text query document yes no cat dog bird car tree house person man woman child "
    "music speech noise silence loud quiet fast slow big small large tiny one two three four five "
    "what which where who how why show find me some many all none sky sea water fire stone sun moon"
).split()

_TOKENIZER_MAX_LENGTH = 64
"""Longest token sequence the tiny models accept (their position-embedding tables have this size)."""


def _training_corpus() -> list[str]:
    lines = [f"a {c} {s} at the {p}" for c in _COLORS for s in _SHAPES for p in _POSITIONS]
    lines.append(" ".join(_WORDS))
    lines.extend(" ".join(_WORDS[i : i + 8]) for i in range(0, len(_WORDS), 8))
    return lines * 2


def build_tokenizer(
    path: str | os.PathLike[str] | None = None, *, vocab_size: int = 1000
) -> PreTrainedTokenizerFast:
    """Train a small byte-level BPE tokenizer (lower-cased, ``<s> ... </s>`` added around each text).

    The vocabulary holds whole words for colours, shapes, positions and common words, including
    ``"yes"`` and ``"no"`` (a yes/no reranker reads their ids; with a too-small vocabulary they would
    map to the unknown token). Any other text still tokenises, byte by byte if need be.

    Args:
        path: if given, the tokenizer is also saved there (``save_pretrained``).
        vocab_size: upper bound on the vocabulary size.

    Returns:
        The tokenizer, with ``pad``/``unk``/``bos``/``eos`` tokens set and ``model_max_length`` 64.
    """
    tokenizers = require("tokenizers", extra=None, purpose="building a tiny tokenizer")
    transformers = require("transformers", extra=None, purpose="building a tiny tokenizer")

    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=UNK_TOKEN))
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    bos_id, eos_id = tok.token_to_id(BOS_TOKEN), tok.token_to_id(EOS_TOKEN)
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A {EOS_TOKEN}",
        pair=f"{BOS_TOKEN} $A {EOS_TOKEN} $B:1 {EOS_TOKEN}:1",
        special_tokens=[(BOS_TOKEN, bos_id), (EOS_TOKEN, eos_id)],
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        model_max_length=_TOKENIZER_MAX_LENGTH,
    )
    if path is not None:
        fast.save_pretrained(os.fspath(path))
    return fast


def _seed(seed: int) -> None:
    torch = require("torch", extra=None, purpose="building a tiny model")
    torch.manual_seed(seed)


def _image_processor(kind: str, size: int) -> Any:
    """A PIL-backend image processor (torchvision is not needed), falling back to the default class."""
    import transformers

    cls = getattr(transformers, f"{kind}ImageProcessorPil", None) or getattr(
        transformers, f"{kind}ImageProcessor"
    )
    return cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def build_tiny_clip(
    path: str | os.PathLike[str],
    *,
    image_size: int = 32,
    patch_size: int = 8,
    projection_dim: int = 32,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    seed: int = 0,
) -> Path:
    """Save a tiny random CLIP (text + image) that ``SentenceTransformer(path)`` loads.

    The defaults build a ~150k-parameter model in about a second. Benchmarks can build a
    realistically shaped one, e.g. ViT-B/32: ``image_size=224, patch_size=32, projection_dim=512,
    hidden_size=768, num_layers=12, num_heads=12``.

    Args:
        path: the directory to write (created if needed).
        image_size: the square input size of the vision tower.
        patch_size: the vision tower's patch size.
        projection_dim: the embedding dimension.
        hidden_size: the width of both towers (their MLPs are 2x as wide, 4x above 64).
        num_layers: the depth of both towers.
        num_heads: attention heads in both towers.
        seed: the torch seed for the random weights (same seed, same model).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    transformers = require("transformers", extra=None, purpose="building a tiny CLIP")
    _seed(seed)
    tokenizer = build_tokenizer()
    intermediate = hidden_size * (4 if hidden_size > 64 else 2)
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": intermediate,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "max_position_embeddings": _TOKENIZER_MAX_LENGTH,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            # CLIP pools the text at the first eos token: it must be this tokenizer's eos.
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": hidden_size,
            "intermediate_size": intermediate,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        projection_dim=projection_dim,
    )
    model = transformers.CLIPModel(config).eval()
    processor = transformers.CLIPProcessor(
        image_processor=_image_processor("CLIP", image_size), tokenizer=tokenizer
    )
    out = Path(path)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_clap(
    path: str | os.PathLike[str],
    *,
    sampling_rate: int = 16_000,
    max_length_s: int = 2,
    projection_dim: int = 32,
    seed: int = 0,
) -> Path:
    """Save a tiny random CLAP (text + audio) that ``SentenceTransformer(path)`` loads.

    The feature extractor reads mono audio at ``sampling_rate`` Hz, ``max_length_s`` seconds at most,
    as 16 mel bins.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    transformers = require("transformers", extra=None, purpose="building a tiny CLAP")
    _seed(seed)
    tokenizer = build_tokenizer()
    num_mel_bins = 16
    config = transformers.ClapConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            # RoBERTa-style positions start after the padding index.
            "max_position_embeddings": _TOKENIZER_MAX_LENGTH + tokenizer.pad_token_id + 2,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "projection_dim": projection_dim,
        },
        audio_config={
            "num_mel_bins": num_mel_bins,
            "spec_size": 64,
            "window_size": 4,
            "patch_size": 4,
            "patch_stride": [4, 4],
            "patch_embeds_hidden_size": 16,
            # The Swin encoder doubles its width at each stage: 16 * 2 ** (len(depths) - 1).
            "hidden_size": 32,
            "depths": [1, 1],
            "num_attention_heads": [2, 4],
            "num_hidden_layers": 2,
            "projection_dim": projection_dim,
            "enable_fusion": False,
        },
        projection_dim=projection_dim,
    )
    model = transformers.ClapModel(config).eval()
    hop_length = sampling_rate // 100
    feature_extractor = transformers.ClapFeatureExtractor(
        feature_size=num_mel_bins,
        sampling_rate=sampling_rate,
        hop_length=hop_length,
        max_length_s=max_length_s,
        fft_window_size=4 * hop_length if (4 * hop_length) % 2 == 0 else 4 * hop_length + 1,
        frequency_max=sampling_rate // 2,
        # One mel spectrogram per clip: the unfused model reads one channel ("fusion" makes four).
        truncation="rand_trunc",
        padding="repeatpad",
    )
    processor = transformers.ClapProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    out = Path(path)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_xclip(
    path: str | os.PathLike[str],
    *,
    num_frames: int = 4,
    image_size: int = 32,
    projection_dim: int = 32,
    seed: int = 0,
) -> Path:
    """Save a tiny random X-CLIP (text + video) as a sentence-transformers model directory.

    ``SentenceTransformer`` alone would find only the text side of an X-CLIP checkpoint, so the
    ``Transformer`` module is built with an explicit ``modality_config`` mapping video to
    ``get_video_features`` (``pooler_output``) and text to ``get_text_features``, then saved.
    The model reads exactly ``num_frames`` RGB frames of ``image_size`` pixels per video.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    transformers = require("transformers", extra=None, purpose="building a tiny X-CLIP")
    st = require("sentence_transformers", extra=None, purpose="building a tiny X-CLIP")
    st_modules = require("sentence_transformers.base.modules", extra=None, purpose="building a tiny X-CLIP")
    _seed(seed)
    tokenizer = build_tokenizer()
    config = transformers.XCLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": _TOKENIZER_MAX_LENGTH,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
            "num_frames": num_frames,
            "mit_hidden_size": 32,
            "mit_intermediate_size": 64,
            "mit_num_attention_heads": 2,
            "mit_num_hidden_layers": 1,
        },
        projection_dim=projection_dim,
        prompt_layers=1,
        prompt_num_attention_heads=2,
    )
    model = transformers.XCLIPModel(config).eval()
    processor = transformers.XCLIPProcessor(
        image_processor=_image_processor("VideoMAE", image_size), tokenizer=tokenizer
    )
    out = Path(path)
    raw = out / "_hf"
    model.save_pretrained(raw)
    processor.save_pretrained(raw)
    module = st_modules.Transformer(
        os.fspath(raw),
        modality_config={
            "text": {"method": "get_text_features", "method_output_name": "pooler_output"},
            "video": {"method": "get_video_features", "method_output_name": "pooler_output"},
        },
        module_output_name="sentence_embedding",
    )
    st.SentenceTransformer(modules=[module]).save(os.fspath(out))
    _remove_tree(raw)
    return out


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "UNK_TOKEN",
    "build_tiny_clap",
    "build_tiny_clip",
    "build_tiny_xclip",
    "build_tokenizer",
]
