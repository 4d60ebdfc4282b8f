"""LangChain integration for omniretrieve: multimodal embeddings, retriever, reranker and vector store."""

from langchain_omniretrieve.embeddings import OmniretrieveEmbeddings
from langchain_omniretrieve.rerankers import OmniretrieveReranker
from langchain_omniretrieve.retrievers import OmniretrieveRetriever
from langchain_omniretrieve.vectorstores import OmniretrieveVectorStore

__all__ = [
    "OmniretrieveEmbeddings",
    "OmniretrieveReranker",
    "OmniretrieveRetriever",
    "OmniretrieveVectorStore",
]
