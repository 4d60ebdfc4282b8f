from __future__ import annotations

import importlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
MODULE = "llama_index.vector_stores.omniretrieve"
EXPORTS = ["OmniretrieveVectorStore"]


def test_all_is_pinned() -> None:
    mod = importlib.import_module(MODULE)
    assert sorted(mod.__all__) == sorted(EXPORTS)
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_namespace_packages_merge_with_llama_index_core() -> None:
    """``llama_index`` and ``llama_index.vector_stores`` are namespace packages shared with llama-index-core."""
    import llama_index
    import llama_index.core

    assert getattr(llama_index, "__file__", None) is None  # a namespace package has no __init__
    assert not (PACKAGE_ROOT / "llama_index" / "__init__.py").exists()
    assert not (PACKAGE_ROOT / "llama_index" / "vector_stores" / "__init__.py").exists()
    portions = {Path(p).resolve() for p in llama_index.__path__}
    assert (PACKAGE_ROOT / "llama_index").resolve() in portions
    assert Path(llama_index.core.__file__).resolve().parent.parent in portions
