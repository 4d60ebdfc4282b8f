from llama_index.vector_stores.omniretrieve.base import OmniretrieveVectorStore

__all__ = ["OmniretrieveVectorStore"]
