"""``OmniretrieveRerank``: omniretrieve's multimodal reranker as a LlamaIndex node postprocessor."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.embeddings.omniretrieve.convert import node_item, query_item, resolve_model

from omniretrieve import InvalidInputError, OmniretrieveError, Reranker
from omniretrieve.models import CROSS_ENCODER_OPTIONS
from omniretrieve.rerank import rerank_candidates
from omniretrieve.types import ItemInput, describe

if TYPE_CHECKING:
    from omniretrieve import MediaPolicy

logger = logging.getLogger(__name__)
dispatcher = instrument.get_dispatcher(__name__)


class OmniretrieveRerank(BaseNodePostprocessor):
    """Rerank text, image and combined nodes, from any retriever, with an omniretrieve reranker.

    Each node is scored jointly with the query by the reranker's model (a multimodal cross-encoder
    reads the image itself), and the nodes come back sorted by that score, best first, with the
    reranker's score (fused with the first stage's, see below) as ``NodeWithScore.score``. It reads
    every node kind LlamaIndex retrievers return: ``TextNode``; ``ImageNode`` with ``image_path``,
    ``image_url`` or a base64 ``image`` (with its text as well, if it has any: a combined item);
    ``Node`` / ``Document`` with image, audio or video resources. The query is the bundle's
    ``query_str``, its ``image_path``, or both.

    Setup::

        pip install llama-index-postprocessor-omniretrieve-rerank

    Instantiate (a cross-encoder id or local directory, or a ready omniretrieve ``Reranker``)::

        from llama_index.postprocessor.omniretrieve_rerank import OmniretrieveRerank

        rerank = OmniretrieveRerank("path/to/multimodal-reranker", top_n=5)
        rerank = OmniretrieveRerank(my_reranker, top_n=5)   # e.g. CrossEncoderReranker(...), FakeReranker()

    Use it after any retriever, e.g. in a query engine::

        query_engine = RetrieverQueryEngine.from_args(retriever, node_postprocessors=[rerank])
        # or: index.as_query_engine(node_postprocessors=[rerank])

    First-stage scores: a reranker that fuses its scores with the first stage's (an omniretrieve
    ``CrossEncoderReranker`` whose ``first_stage_weight`` is above 0, as the demo reranker's is by
    default: ``load_reranker("demo")``) is given each node's incoming ``NodeWithScore.score`` as its
    first-stage score, as ``omniretrieve.Store.search`` gives its own, and the nodes come back with
    the fused score. When a node to rerank has no score (``None``), that call ranks by the reranker
    alone. For the reranker alone every time, give it ``first_stage_weight=0.0``
    (``load_reranker("demo", first_stage_weight=0.0)``).

    Nodes the reranker could not score (an image that would not load, a modality the model does
    not read) follow the scored ones in their incoming order, with ``score=None``; the reason is
    logged. Images are read by omniretrieve's ``MediaLoader`` under its policy: an ``image_url`` is
    fetched only when the policy allows URLs (``media_policy=MediaPolicy(allow_urls=True)`` or the
    given reranker's loader), never by LlamaIndex's ``resolve_image``.

    Args:
        model: hub id or local directory of a sentence-transformers ``CrossEncoder``, or a ready
            omniretrieve ``Reranker`` (as ``reranker=``).
        reranker: a ready omniretrieve ``Reranker`` to use as it is. Not with ``model``, ``device``
            or ``media_policy``.
        top_n: keep the best ``top_n`` nodes; ``None`` keeps them all, reordered.
        device: torch device to load the model on; default: the best available.
        media_policy: the ``omniretrieve.MediaPolicy`` images are read under; default:
            omniretrieve's safe default (no URLs).
        metadata_mode: how a node's metadata joins its text for scoring; default
            ``MetadataMode.NONE`` (the text alone).
        keep_retrieval_score: store each node's previous score in its metadata as
            ``"retrieval_score"`` (as LlamaIndex's own rerankers do).
        **kwargs: every loading option of ``CrossEncoder(...)`` by its name (``revision``,
            ``cache_folder``, ``local_files_only``, ``token``, ``backend``, ``max_length``,
            ``model_kwargs``...: ``omniretrieve.models.CROSS_ENCODER_OPTIONS``), passed to
            ``omniretrieve.CrossEncoderReranker`` with a model name; the others are
            ``BaseNodePostprocessor`` settings (``callback_manager``).

    Raises:
        InvalidInputError: neither or both of a model name and a reranker were given, the object
            given is not a ``Reranker``, loading options were given with a reranker, or ``top_n``
            is not a positive int.
    """

    model: str = Field(
        default="unknown",
        description="Hub id or local directory of the cross-encoder reranker (the reranker's model_id).",
    )
    top_n: int | None = Field(
        default=None, description="Number of nodes to return, best first; None returns them all, reordered."
    )
    device: str | None = Field(
        default=None, description="Torch device the model was loaded on; None: the best available."
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.NONE,
        description="Which metadata joins a node's text when it is scored (NONE: the text alone).",
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description="Whether to keep each node's previous score in metadata['retrieval_score'].",
    )

    _reranker: Reranker = PrivateAttr()

    def __init__(
        self,
        model: str | os.PathLike[str] | Reranker | None = None,
        *,
        reranker: Reranker | None = None,
        top_n: int | None = None,
        device: str | None = None,
        media_policy: MediaPolicy | None = None,
        metadata_mode: MetadataMode = MetadataMode.NONE,
        keep_retrieval_score: bool = False,
        **kwargs: Any,
    ) -> None:
        loading = {key: kwargs.pop(key) for key in CROSS_ENCODER_OPTIONS if key in kwargs}
        name, ready = resolve_model(
            model,
            reranker,
            Reranker,
            role="reranker",
            options={"device": device, "media_policy": media_policy, **loading},
        )
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise InvalidInputError(f"top_n={top_n!r}", "top_n must be None or a positive int")
        settings: dict[str, Any] = {
            "model": name,
            "top_n": top_n,
            "device": device,
            "metadata_mode": metadata_mode,
            "keep_retrieval_score": keep_retrieval_score,
        }
        super().__init__(**settings, **kwargs)
        self._reranker = (
            ready if ready is not None else _load(name, media_policy, {"device": device, **loading})
        )

    @classmethod
    def class_name(cls) -> str:
        return "OmniretrieveRerank"

    @property
    def reranker(self) -> Reranker:
        """The omniretrieve reranker doing the work."""
        return self._reranker

    @property
    def media_policy(self) -> MediaPolicy | None:
        """The policy the reranker reads images under (its media loader's)."""
        return getattr(getattr(self._reranker, "media", None), "policy", None)

    @dispatcher.span
    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise InvalidInputError(
                "query_bundle", "reranking needs the query: pass query_bundle or query_str"
            )
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n or len(nodes), model_name=self.model
            )
        )
        if not nodes:
            dispatcher.event(ReRankEndEvent(nodes=[]))
            return []
        query = query_item(query_bundle)
        candidates: list[ItemInput] = []
        positions: list[int] = []
        unscored: list[int] = []
        for position, scored in enumerate(nodes):
            try:
                candidates.append(node_item(scored.node, metadata_mode=self.metadata_mode))
            except OmniretrieveError as exc:
                logger.warning("not reranking node %s: %s", scored.node.node_id, exc)
                unscored.append(position)
                continue
            positions.append(position)

        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            # top_n is applied here, after the nodes that could not even be read join the unscored.
            first_stage = [nodes[position].score for position in positions]
            results = rerank_candidates(self._reranker, query, candidates, first_stage) if candidates else []
            order: list[tuple[int, float | None]] = []
            for result in results:
                position = positions[result.index]
                if result.scored:
                    order.append((position, result.score))
                else:
                    logger.warning("node %s was not scored: %s", nodes[position].node.node_id, result.error)
                    unscored.append(position)
            order.extend((position, None) for position in sorted(unscored))
            if self.top_n is not None:
                order = order[: self.top_n]
            reranked: list[NodeWithScore] = []
            for position, score in order:
                node = nodes[position].node
                if self.keep_retrieval_score:
                    node.metadata["retrieval_score"] = nodes[position].score
                reranked.append(NodeWithScore(node=node, score=score))
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked


def _load(name: str, media_policy: MediaPolicy | None, options: dict[str, Any]) -> Reranker:
    """Load a cross-encoder by name (with its loading ``options``) with its media loader."""
    from omniretrieve import CrossEncoderReranker, MediaLoader, MediaPolicy

    if media_policy is not None and not isinstance(media_policy, MediaPolicy):
        raise InvalidInputError(describe(media_policy), "media_policy must be an omniretrieve.MediaPolicy")
    media = MediaLoader(media_policy) if media_policy is not None else None
    return CrossEncoderReranker(name, media=media, **options)
