"""Where the store lives, given as ``langchain_chroma.Chroma`` takes it: a directory, or a Chroma server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from omniretrieve import Store
from omniretrieve.errors import InvalidInputError, StoreConnectionError
from omniretrieve.testing.fakes import FakeEmbedder

from langchain_omniretrieve import OmniretrieveEmbeddings, OmniretrieveVectorStore
from langchain_omniretrieve import vectorstores as vectorstores_module


def test_two_clients_share_one_chroma_server(chroma_server: Any) -> None:
    where = {"host": chroma_server.host, "port": chroma_server.port, "collection_name": "lc-shared"}
    writer = OmniretrieveVectorStore(
        embedding=FakeEmbedder(dimension=8),
        headers={"X-Client": "writer"},
        store_options={"timeout": 10},
        **where,
    )
    try:
        reader = OmniretrieveVectorStore.from_texts(
            ["foo"], OmniretrieveEmbeddings(embedder=FakeEmbedder(dimension=8)), ids=["0"], **where
        )
        try:
            assert not writer.store.embedded and writer.store.path is None
            assert (writer.store.host, writer.store.port, writer.store.name) == (
                chroma_server.host,
                chroma_server.port,
                "lc-shared",
            )
            writer.add_texts(["bar", "baz"], [{"a": 2}, {"a": 3}], ids=["2", "3"])
            assert reader.similarity_search("bar", k=1) == [
                Document(id="2", page_content="bar", metadata={"a": 2})
            ]
            assert sorted(str(d.id) for d in reader.max_marginal_relevance_search("bar", k=3)) == [
                "0",
                "2",
                "3",
            ]
            assert [d.id for d in writer.get_by_ids(["0"])] == ["0"]  # what the reader added
        finally:
            reader.close()
    finally:
        writer.close()


def test_ssl_reaches_the_store(chroma_server: Any) -> None:
    """The loopback server speaks plain HTTP: asking for HTTPS fails to connect, promptly."""
    with pytest.raises(StoreConnectionError, match="https://"):
        OmniretrieveVectorStore(
            embedding=FakeEmbedder(dimension=8),
            host=chroma_server.host,
            port=chroma_server.port,
            ssl=True,
            store_options={"timeout": 5},
        )


class _Opened(Exception):
    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__("opened")
        self.options = options


class _RecordingStore(Store):
    """Records how the vector store opens its Store, then stops."""

    def __init__(self, embedder: Any, **options: Any) -> None:
        raise _Opened({"embedder": embedder, **options})


def test_every_option_reaches_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectorstores_module, "Store", _RecordingStore)
    fake = FakeEmbedder(dimension=8)
    with pytest.raises(_Opened) as opened:
        OmniretrieveVectorStore(
            embedding=OmniretrieveEmbeddings(embedder=fake),
            collection_name="docs",
            host="chroma.example",
            port=443,
            ssl=True,
            headers={"Authorization": "Bearer t"},
            store_options={"timeout": 3.0, "prior_count": 0.5},
        )
    assert opened.value.options == {
        "embedder": fake,
        "name": "docs",
        "host": "chroma.example",
        "port": 443,
        "ssl": True,
        "headers": {"Authorization": "Bearer t"},
        "timeout": 3.0,
        "prior_count": 0.5,
    }
    with pytest.raises(_Opened) as opened:
        OmniretrieveVectorStore(embedding=fake, persist_directory="index")
    assert opened.value.options == {"embedder": fake, "path": "index"}  # the Store's own defaults otherwise


def test_conflicting_locations_are_refused(tmp_path: Path) -> None:
    fake = FakeEmbedder(dimension=8)
    with pytest.raises(InvalidInputError, match="path|host"):
        OmniretrieveVectorStore(embedding=fake, persist_directory=tmp_path / "a", host="localhost")
    with pytest.raises(InvalidInputError, match="own parameters"):
        OmniretrieveVectorStore(embedding=fake, persist_directory=tmp_path / "b", store_options={"path": "x"})
    opened = OmniretrieveVectorStore(embedding=fake, persist_directory=tmp_path / "c")
    try:
        for option in ({"host": "localhost"}, {"collection_name": "x"}, {"store_options": {"timeout": 1}}):
            with pytest.raises(InvalidInputError, match="not both"):
                OmniretrieveVectorStore(store=opened.store, **option)  # type: ignore[arg-type]
    finally:
        opened.close()
