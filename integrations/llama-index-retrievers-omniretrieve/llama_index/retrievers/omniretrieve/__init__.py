from llama_index.embeddings.omniretrieve.convert import document_to_node, metadata_filters_to_where
from llama_index.retrievers.omniretrieve.base import OmniretrieveRetriever, hit_to_node
from llama_index.retrievers.omniretrieve.ingest import add_documents

__all__ = [
    "OmniretrieveRetriever",
    "add_documents",
    "document_to_node",
    "hit_to_node",
    "metadata_filters_to_where",
]
