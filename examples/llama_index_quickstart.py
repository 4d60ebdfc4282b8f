"""omniretrieve in LlamaIndex, in one minute: a folder of images and texts, searched as one list.

Runs offline on the demo model shipped with omniretrieve (a tiny CLIP trained on colored shapes)
and the demo world (shape images, captions and distractor texts) written to a temporary folder:

    pip install llama-index-retrievers-omniretrieve llama-index-vector-stores-omniretrieve \
        llama-index-readers-file
    python examples/llama_index_quickstart.py

Steps: read the folder with LlamaIndex's ``SimpleDirectoryReader``, add it to an omniretrieve
store in one call, retrieve with a text query and with an image query (``QueryBundle.image_path``),
answer through a ``RetrieverQueryEngine`` (with LlamaIndex's ``MockLLM``: no LLM needed), then
query the same store through LlamaIndex's own ``VectorStoreIndex`` (``OmniretrieveVectorStore``).
The query engine reranks with the demo reranker shipped with omniretrieve
(``OmniretrieveRerank(reranker=load_reranker("demo"))`` in ``node_postprocessors``; any
cross-encoder works the same way: ``OmniretrieveRerank("hub/id-or-dir", top_n=5)``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from llama_index.core import SimpleDirectoryReader, VectorStoreIndex  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle  # noqa: E402
from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding  # noqa: E402
from llama_index.postprocessor.omniretrieve_rerank import OmniretrieveRerank  # noqa: E402
from llama_index.retrievers.omniretrieve import OmniretrieveRetriever, add_documents  # noqa: E402
from llama_index.vector_stores.omniretrieve import OmniretrieveVectorStore  # noqa: E402

from omniretrieve import Store, load_embedder, load_reranker  # noqa: E402
from omniretrieve.demo import make_world  # noqa: E402


def describe(hit: NodeWithScore) -> str:
    node = hit.node
    if isinstance(node, ImageNode):
        what = f"image {Path(node.image_path or node.image_url or '?').name}"
    else:
        what = f"text  {node.get_content().strip()!r}"
    return f"  {hit.score:+.3f}  {what}"


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_world(seed=0).write(Path(tmp) / "world")

        # 1. LlamaIndex reads the folder: PNGs become ImageDocuments (by path), .txt files Documents.
        documents = SimpleDirectoryReader(str(folder / "corpus")).load_data()

        # 2. One call stores them all in an omniretrieve store (one Chroma collection per modality).
        store = Store(load_embedder("demo"), path=Path(tmp) / "store")  # or load_embedder("hub/id-or-dir")
        with store:
            results = add_documents(store, documents)
            added = sum(r.status == "added" for r in results)
            print(f"added {added} documents: {store.count('image')} images, {store.count('text')} texts")

            # 3. One calibrated list over texts and images, for a text query...
            retriever = OmniretrieveRetriever(store, similarity_top_k=4)
            query = "find the red circle in the top left"
            print(f"text query {query!r}:")
            for hit in retriever.retrieve(query):
                print(describe(hit))

            # ... and for an image query.
            image_query = next(folder.glob("queries/*.png"))
            print(f"image query {image_query.name}:")
            for hit in retriever.retrieve(QueryBundle(query_str="", image_path=str(image_query))):
                print(describe(hit))

            # 4. Any LlamaIndex query engine takes the retriever (MockLLM: no model needed here); the
            #    demo reranker reads the query with each of the calibrated top 10 and keeps 4.
            wide = OmniretrieveRetriever(store, similarity_top_k=10)
            rerank = OmniretrieveRerank(reranker=load_reranker("demo"), top_n=4)
            engine = RetrieverQueryEngine.from_args(wide, llm=MockLLM(), node_postprocessors=[rerank])
            response = engine.query(query)
            kinds = sorted({type(n.node).__name__ for n in response.source_nodes})
            print(f"query engine, reranked: {len(response.source_nodes)} source nodes ({', '.join(kinds)}):")
            for hit in response.source_nodes:
                print(describe(hit))

            # 5. The same store as a LlamaIndex vector store, under LlamaIndex's own VectorStoreIndex
            #    (LlamaIndex embeds the query; the store searches it as one calibrated list).
            index = VectorStoreIndex.from_vector_store(
                OmniretrieveVectorStore(store=store), embed_model=OmniretrieveEmbedding(store.embedder)
            )
            response = index.as_query_engine(llm=MockLLM(), similarity_top_k=4).query(query)
            print(f"vector store index: {len(response.source_nodes)} source nodes:")
            for hit in response.source_nodes:
                print(describe(hit))
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
