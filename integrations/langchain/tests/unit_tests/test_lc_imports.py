from langchain_omniretrieve import __all__

EXPECTED_ALL = [
    "OmniretrieveEmbeddings",
    "OmniretrieveReranker",
    "OmniretrieveRetriever",
    "OmniretrieveVectorStore",
]


def test_all_imports() -> None:
    assert sorted(EXPECTED_ALL) == sorted(__all__)
