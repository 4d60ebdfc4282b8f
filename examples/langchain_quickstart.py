"""LangChain quickstart: captions and pictures in one vector store, searched by text and by image.

Runs offline in seconds on the demo model that ships with omniretrieve (a toy CLIP trained on
colored shapes) and the demo world (rendered shapes, captions, distractor texts), in a temporary
folder. Needs `pip install langchain-omniretrieve`.

    python examples/langchain_quickstart.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from langchain_core.documents import Document  # noqa: E402
from langchain_omniretrieve import (  # noqa: E402
    OmniretrieveEmbeddings,
    OmniretrieveReranker,
    OmniretrieveRetriever,
    OmniretrieveVectorStore,
)

from omniretrieve import load_embedder, load_reranker  # noqa: E402
from omniretrieve.demo import make_world  # noqa: E402


def format_docs(docs: list[Document]) -> str:
    """What a RAG prompt would get: one line per document, its modality first (no key: text)."""
    return "\n".join(f"  [{d.metadata.get('modality', 'text')}] {d.page_content}" for d in docs)


def main() -> None:
    world = make_world(seed=0)

    def label(doc: Document) -> str:
        """A picture is shown by the scene it depicts, a text by its text."""
        scene = world.doc(doc.id).scene if doc.metadata.get("modality") == "image" and doc.id else None
        return f"picture: {scene.caption()}" if scene is not None else doc.page_content

    with tempfile.TemporaryDirectory() as tmp:
        folder = world.write(Path(tmp) / "shapes")  # corpus/*.png and *.txt, queries/*.png

        # The demo model; any model works the same way: OmniretrieveEmbeddings(model="hub/id-or-dir").
        embeddings = OmniretrieveEmbeddings(embedder=load_embedder("demo", device="cpu"))
        store = OmniretrieveVectorStore(embedding=embeddings, persist_directory=Path(tmp) / "index")
        texts = [d for d in world.docs if d.text is not None]
        images = [d for d in world.docs if d.image is not None]
        store.add_texts(
            [d.text for d in texts if d.text is not None],
            metadatas=[{"kind": "caption" if d.scene else "distractor"} for d in texts],
            ids=[d.id for d in texts],
        )
        store.add_images(
            uris=[str(folder / "corpus" / f"{d.id}.png") for d in images],
            metadatas=[{"kind": "picture"} for _ in images],
            ids=[d.id for d in images],
        )
        print(f"indexed {len(texts)} texts and {len(images)} pictures")

        query = next(q for q in world.queries if q.target == "mixed" and q.text)
        assert query.text is not None
        print(f"\ntext query: {query.text!r}")
        for calibration in ("none", "gap"):
            retriever = OmniretrieveRetriever(store=store.store, k=4, calibration=calibration)
            docs = retriever.invoke(query.text)
            title = "raw cosine (modality gap)" if calibration == "none" else "calibrated (gap removed)"
            print(f" {title}:")
            for d in docs:
                print(f"  {d.metadata['score']:+.3f} {d.metadata.get('modality', 'text'):5} {label(d)}")

        retriever = OmniretrieveRetriever(store=store.store, k=3)
        image_query = next(q for q in world.queries if q.image is not None)
        query_path = folder / "queries" / f"{image_query.id}.png"
        print(f"\nimage query: a new picture of a {image_query.scene.color} {image_query.scene.shape}")
        for d in retriever.invoke({"image": str(query_path)}):
            print(f"  {d.metadata['score']:+.3f} {d.metadata.get('modality', 'text'):5} {label(d)}")

        print("\nsecond stage: the demo reranker reads the query with each of the calibrated top 10:")
        reranker = OmniretrieveReranker(reranker=load_reranker("demo"), top_n=4)  # or model="hub/id-or-dir"
        candidates = OmniretrieveRetriever(store=store.store, k=10).invoke(query.text)
        for d in reranker.compress_documents(candidates, query.text):
            print(f"  {d.metadata['relevance_score']:+.3f} {d.metadata.get('modality', 'text'):5} {label(d)}")

        print("\nrelevant and diverse (MMR: the best match once, then other scenes):")
        mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 4, "fetch_k": 20})
        for d in mmr.invoke(query.text):
            print(f"  {d.metadata.get('modality', 'text'):5} {label(d)}")

        print("\ncontext for a RAG prompt (captions only, filtered):")
        context = (retriever | format_docs).invoke(query.text, filter={"kind": "caption"})
        print(context)
        store.close()


if __name__ == "__main__":
    main()
