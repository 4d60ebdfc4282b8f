from llama_index.embeddings.omniretrieve.base import OmniretrieveEmbedding

__all__ = ["OmniretrieveEmbedding"]
