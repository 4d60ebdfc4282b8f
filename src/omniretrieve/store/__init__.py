"""The Chroma-backed store: add texts, images, audio, video and combined documents; search them as one list.

Setup::

    pip install omniretrieve        # Chroma comes with it

Instantiate (embedded: a directory on this machine, one writing process at a time)::

    from omniretrieve.embedding import SentenceTransformerEmbedder
    from omniretrieve.store import Store

    embedder = SentenceTransformerEmbedder("path/to/clip")
    store = Store(embedder, path="my-store")          # default path: ./omniretrieve-store

Instantiate (client-server: several processes, or another machine; start the server with
``chroma run --path DIR --port 8000``)::

    store = Store(embedder, host="localhost", port=8000, timeout=30.0)

Add (ids default to the content's SHA-256: adding the same thing twice stores it once)::

    from omniretrieve.types import Image

    results = store.add(["a red circle", Image("circle.png"), {"text": "slide 3", "image": "s3.png"}],
                        metadatas=[{"lang": "en"}, {"album": "shapes"}, {"deck": "intro"}])
    [r.status for r in results]     # ["added", "added", "added"]; a bad item fails alone

Search (one ranked list over every modality, scores comparable across them)::

    for hit in store.search("a red circle", k=5, where={"lang": "en"}):
        print(hit.modality, hit.score, hit.document.text or hit.document.image)

Update, delete, close::

    store.upsert(["a red circle"], metadatas=[{"lang": "fr"}])   # replaces the metadata entirely
    store.delete(ids=[...]); store.delete(where={"album": "shapes"})
    store.close()                     # or use ``with Store(...) as store:``

Inspect (no model loaded, nothing written, safe while another process writes; see :meth:`Store.inspect`)::

    info = Store.inspect(path="my-store")        # or host=..., port=...
    info.model_id, info.counts, info.mean_distances
    store = Store(load_embedder(info.model_id), path="my-store")   # reopen with the model it was built with

How it is built: :class:`Store` is a thin facade over one module per job:

* ``_backend``: embedded (``PersistentClient`` under a directory lock, ``_lock``) or a server
  (``HttpClient`` with a timeout), chosen once;
* ``_schema``: the layout: one collection per document kind (``NAME.text``, ``NAME.image``,
  ``NAME.audio``, ``NAME.video``, ``NAME.combined``) plus ``NAME.stats``, and the embedding-space
  check (opening a store with another model raises
  :class:`~omniretrieve.errors.EmbeddingSpaceMismatchError`);
* ``_records``: documents <-> Chroma records; ``_filters``: ``where`` filters;
* ``_ingest``: writes (plan, embed, write in batches, one :class:`WriteResult` per item);
* ``_statistics``: the per-kind sums calibration needs, following every write;
* ``_search``: the exact top k over every kind (:func:`omniretrieve.topk.top_k`), reranked;
* ``_samples``: per-state samples of each kind, the ``"auto"`` choice and search bounds;
* ``_identity``: what defines the embedding space (model id, revision, a fingerprint of probe
  embeddings), checked at every open (:data:`FINGERPRINT_MIN_COSINE`, :class:`ModelChange`);
* ``_media``: reading media, and content-addressed copies (``copy_media=True``);
* ``_inspect``: :meth:`Store.inspect` and :class:`StoreInfo`.

Searching one collection per kind instead of filtering one collection by modality is what keeps
search fast: ``benchmarks/results/search_latency.json`` holds a calibrated search's latency beside
one plain Chroma query over every document and a Chroma query filtered by modality.

What a score means (``SearchHit.score``): with ``"gap"``, the cosine between the query and the
document after removing each kind's mean direction: in ``[-1, 1]``, comparable across kinds (a text
scoring 0.8 and an image scoring 0.8 match the query equally well, as far as the model can tell);
``SearchHit.cosine`` keeps the raw cosine. The default ``"auto"`` applies ``"gap"`` where the
store shows a modality gap and the raw cosine (``"none"``) where it does not, chosen once per store
state; ``benchmarks/results/calibration.json`` compares the methods per world.

Combined documents (several parts) are embedded as one vector by the embedder (natively, or as the
normalised mean of their parts' vectors) and stored in the ``combined`` collection, which has its
own mean; the calibrated score of a combined document is the cosine between the centred query and
its centred vector. ``benchmarks/results/mixed_search.json`` compares this with scoring each part
separately: the single vector ranks as well and needs no extra records.

A ``Store`` object is meant for one thread at a time (searches may run in parallel with each other
but not with writes).
"""

from __future__ import annotations

from omniretrieve.store._backend import DEFAULT_PATH, DEFAULT_TIMEOUT
from omniretrieve.store._filters import chroma_where
from omniretrieve.store._identity import FINGERPRINT_MIN_COSINE, ModelChange
from omniretrieve.store._ingest import DEFAULT_BATCH_SIZE, WriteResult, WriteStatus
from omniretrieve.store._inspect import StoreInfo
from omniretrieve.store._lock import LOCK_FILE
from omniretrieve.store._media import MEDIA_DIR
from omniretrieve.store._records import FLOAT_TOLERANCE
from omniretrieve.store._schema import DEFAULT_NAME, SCHEMA_VERSION
from omniretrieve.store._search import CANDIDATES_FACTOR, CANDIDATES_MIN, DEFAULT_RERANK_TOP_N
from omniretrieve.store._store import Store
from omniretrieve.vectors import check_vector

__all__ = [
    "CANDIDATES_FACTOR",
    "CANDIDATES_MIN",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_NAME",
    "DEFAULT_PATH",
    "DEFAULT_RERANK_TOP_N",
    "DEFAULT_TIMEOUT",
    "FINGERPRINT_MIN_COSINE",
    "FLOAT_TOLERANCE",
    "LOCK_FILE",
    "MEDIA_DIR",
    "ModelChange",
    "SCHEMA_VERSION",
    "Store",
    "StoreInfo",
    "WriteResult",
    "WriteStatus",
    "check_vector",
    "chroma_where",
]
