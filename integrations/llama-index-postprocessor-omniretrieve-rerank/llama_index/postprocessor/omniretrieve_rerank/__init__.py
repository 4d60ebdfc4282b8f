from llama_index.postprocessor.omniretrieve_rerank.base import OmniretrieveRerank

__all__ = ["OmniretrieveRerank"]
