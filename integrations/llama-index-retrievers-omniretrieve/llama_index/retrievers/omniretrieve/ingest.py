"""Adding LlamaIndex documents and nodes to an omniretrieve store in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import BaseNode
from llama_index.embeddings.omniretrieve.convert import file_source, node_item

from omniretrieve import InvalidInputError, OmniretrieveError
from omniretrieve.types import ItemInput, describe

if TYPE_CHECKING:
    from omniretrieve import Store, WriteResult


def add_documents(
    store: Store,
    documents: Sequence[BaseNode],
    *,
    upsert: bool = False,
    use_node_ids: bool = False,
    show_progress: bool | None = None,
) -> list[WriteResult]:
    """Embed and store LlamaIndex documents or nodes: texts, images, audio, video, or combinations.

    Each document or node becomes one omniretrieve document:

    - ``Document`` / ``TextNode`` -> a text document (the text alone, without the metadata);
    - ``ImageDocument`` / ``ImageNode`` -> an image document, referenced by its file path (or URL,
      or kept in memory for base64 images: give the store ``copy_media=True`` to keep those), plus
      its text as a caption if it has one (a combined document);
    - a ``Node`` / ``Document`` with audio or video resources -> an audio / video document.

    This is what ``SimpleDirectoryReader`` gives for a folder of images and text files (images
    become ``ImageDocument`` by file path when ``llama-index-readers-file`` is installed). Split
    long texts first (e.g. ``SentenceSplitter().get_nodes_from_documents(docs)``) to store chunks.

    The metadata is kept (keys with ``None`` values are left out: Chroma stores no ``None``), and a
    ``file_path`` from a LlamaIndex reader becomes the document's source. Ids are omniretrieve's
    content hashes, so reading the same folder again adds nothing twice; ``use_node_ids=True``
    keeps LlamaIndex's ids instead (``SimpleDirectoryReader`` makes random ones unless
    ``filename_as_id=True``).

    Args:
        store: the omniretrieve ``Store`` to write to.
        documents: LlamaIndex documents or nodes.
        upsert: replace documents already stored under the same id (default: keep them).
        use_node_ids: store under each node's ``node_id`` instead of the content hash.
        show_progress: show the embedder's progress bar.

    Returns:
        One ``WriteResult`` per document, in order (``status`` ``"added"``, ``"exists"``,
        ``"updated"``, ``"unchanged"`` or ``"failed"`` with the ``error``). A document that cannot
        be stored (no content, an unreadable image, bad metadata) fails alone.

    Raises:
        InvalidInputError: ``documents`` is not a sequence of LlamaIndex nodes.
    """
    from omniretrieve import WriteResult

    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise InvalidInputError(describe(documents), "pass a list of LlamaIndex documents or nodes")
    items: list[ItemInput] = []
    ids: list[str | None] = []
    metadatas: list[dict[str, Any]] = []
    sources: list[str | None] = []
    positions: list[int] = []
    failed: list[WriteResult] = []
    for position, node in enumerate(documents):
        if not isinstance(node, BaseNode):
            error = InvalidInputError(describe(node), "not a LlamaIndex document or node")
            failed.append(WriteResult(position, None, "failed", error))
            continue
        try:
            items.append(node_item(node))
        except OmniretrieveError as exc:
            failed.append(WriteResult(position, None, "failed", exc))
            continue
        positions.append(position)
        ids.append(node.node_id if use_node_ids else None)
        metadatas.append({k: v for k, v in node.metadata.items() if v is not None})
        sources.append(file_source(node.metadata))
    write = store.upsert if upsert else store.add
    written = (
        write(items, ids=ids, metadatas=metadatas, sources=sources, show_progress=show_progress)
        if items
        else []
    )
    results = [WriteResult(positions[r.index], r.id, r.status, r.error) for r in written] + failed
    return sorted(results, key=lambda r: r.index)
