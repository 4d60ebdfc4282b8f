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
  ``score == float("-inf")`` and ``error`` set (``result.ok`` is False): a media file that would
  not load (a :class:`~omniretrieve.errors.MediaError`), an input of no accepted shape
  (:class:`~omniretrieve.errors.InvalidInputError`), a modality the model cannot read under the
  ``"keep_last"`` policy (:class:`~omniretrieve.errors.UnsupportedModalityError`), or an item the
  model itself failed on or scored NaN (:class:`~omniretrieve.errors.RerankError`). One bad
  candidate never costs the others.
- ``top_n`` is applied last, after this ordering.

Unsupported modalities (``unsupported=``): ``"keep_last"`` (default) keeps such candidates, unscored,
after the scored ones; ``"drop"`` leaves them out of the results; ``"error"`` raises
:class:`~omniretrieve.errors.UnsupportedModalityError` naming the first one, before anything is
scored. A query the model cannot read always raises.

The package: :mod:`~omniretrieve.rerank.protocol` (:class:`Reranker`, :class:`RerankResult`,
:data:`UnsupportedPolicy`), :mod:`~omniretrieve.rerank.rules` (the checks, policy and ordering every
reranker follows, the fake one included), :mod:`~omniretrieve.rerank.cross_encoder`
(:class:`CrossEncoderReranker`; what it shares with the embedder lives in :mod:`omniretrieve.models`),
:mod:`~omniretrieve.rerank.fusion` (the first stage's scores interpolated with the reranker's:
``CrossEncoderReranker(first_stage_weight=w).rerank(..., first_stage_scores=...)``).

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

from omniretrieve.rerank.cross_encoder import CrossEncoderReranker
from omniretrieve.rerank.fusion import rerank_candidates
from omniretrieve.rerank.loading import load_reranker
from omniretrieve.rerank.protocol import Reranker, RerankResult, UnsupportedPolicy

__all__ = [
    "CrossEncoderReranker",
    "RerankResult",
    "Reranker",
    "UnsupportedPolicy",
    "load_reranker",
    "rerank_candidates",
]
