"""LangChain embeddings over an omniretrieve embedder (text and images in one vector space)."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from omniretrieve import Embedder, Image, InvalidInputError, Text
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from langchain_omniretrieve._options import media_loader, translate_media_options


class OmniretrieveEmbeddings(BaseModel, Embeddings):
    """Embed texts and images with one multimodal sentence-transformers model (e.g. CLIP).

    Texts and images land in the same vector space, so a text query finds images and an image
    query finds captions. Images are read by omniretrieve's media loader under its policy: local
    paths by default; URLs only when the policy allows them; never a plain text string.

    Setup:
        ```bash
        pip install -U langchain-omniretrieve "omniretrieve[image]"
        ```

    Key init args:
        model: a sentence-transformers model: hub id or local directory.
        embedder: an omniretrieve ``Embedder`` already built (instead of ``model``).
        media_policy: what ``embed_image`` may read (an ``omniretrieve.MediaPolicy``, e.g.
            ``MediaPolicy(allow_urls=True)``); only with ``model`` (an ``embedder`` brings its own
            loader). The same option as in the LlamaIndex integration; ``allow_urls=`` and
            ``media=`` are its deprecated spellings.
        device: torch device for ``model``, e.g. ``"cpu"`` or ``"cuda"``.
        model_kwargs: loading options for ``model`` by name, as in LangChain's
            ``HuggingFaceEmbeddings``: every option of ``SentenceTransformer(...)`` (``revision``,
            ``cache_folder``, ``local_files_only``, ``token``, ``backend``, ``truncate_dim``,
            ``prompts``, ``model_kwargs``...), passed to omniretrieve.

    Instantiate:
        ```python
        from langchain_omniretrieve import OmniretrieveEmbeddings

        embeddings = OmniretrieveEmbeddings(model="path/to/clip-model")
        pinned = OmniretrieveEmbeddings(model="org/clip", model_kwargs={"revision": "<commit>"})
        ```

    Embed text:
        ```python
        vector = embeddings.embed_query("a red circle")
        vectors = embeddings.embed_documents(["a red circle", "a blue square"])
        ```

    Embed images (paths, ``data:`` URIs, and URLs if the media policy allows them):
        ```python
        image_vectors = embeddings.embed_image(uris=["photos/circle.png"])
        ```

    Use with a vector store:
        ```python
        from langchain_omniretrieve import OmniretrieveVectorStore

        store = OmniretrieveVectorStore(embedding=embeddings, persist_directory="index")
        store.add_images(uris=["photos/circle.png"])
        store.similarity_search("a red circle", k=1)
        ```

    Async:
        ```python
        vector = await embeddings.aembed_query("a red circle")
        image_vectors = await embeddings.aembed_image(uris=["photos/circle.png"])
        ```
    """

    model: str | None = Field(
        default=None, description="Hub id or local directory of a sentence-transformers model."
    )
    embedder: Any = Field(default=None, description="An omniretrieve Embedder to use instead of `model`.")
    media_policy: Any = Field(
        default=None, description="omniretrieve MediaPolicy for reading images (only with `model`)."
    )
    device: str | None = Field(default=None, description="Torch device for `model`.")
    model_kwargs: dict[str, Any] | None = Field(
        default=None,
        description="Loading options for `model`, by name: every option of SentenceTransformer(...) "
        "(revision, cache_folder, local_files_only, token, backend, model_kwargs, ...).",
    )

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=(), extra="forbid")

    _embedder: Embedder = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _media_option_spellings(cls, data: Any) -> Any:
        return translate_media_options(data, cls.__name__)

    @model_validator(mode="after")
    def _build_embedder(self) -> OmniretrieveEmbeddings:
        if (self.model is None) == (self.embedder is None):
            raise InvalidInputError(
                "OmniretrieveEmbeddings",
                "give exactly one of `model` (a model id or directory) and `embedder`",
            )
        if self.embedder is not None:
            if not isinstance(self.embedder, Embedder):
                raise InvalidInputError(
                    type(self.embedder).__name__,
                    "`embedder` must be an omniretrieve Embedder (omniretrieve.load_embedder(...))",
                )
            if self.media_policy is not None or self.device is not None or self.model_kwargs:
                raise InvalidInputError(
                    "OmniretrieveEmbeddings",
                    "`media_policy`, `device` and `model_kwargs` apply to `model`; configure the embedder itself",
                )
            self._embedder = self.embedder
            return self
        from omniretrieve import load_embedder

        media = media_loader(self.media_policy)
        self._embedder = load_embedder(
            self.model,  # type: ignore[arg-type]  # set: checked above
            device=self.device,
            media=media,
            **(self.model_kwargs or {}),
        )
        if media is not None:
            self.media_policy = media.policy
        return self

    @property
    def omniretrieve_embedder(self) -> Embedder:
        """The omniretrieve embedder doing the work."""
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as documents.

        Args:
            texts: The texts (always read as text, even when they look like paths or URLs).

        Returns:
            One L2-normalised vector of Python floats per text.
        """
        vectors = self._embedder.embed([Text(t) for t in texts], role="document")
        return vectors.tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """Embed a text query.

        Args:
            text: The query text (always read as text).

        Returns:
            An L2-normalised vector of Python floats.
        """
        return self._embedder.embed_query(Text(text)).tolist()  # type: ignore[no-any-return]

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images, in the same space as the texts.

        ``langchain_chroma.Chroma.add_images`` and ``similarity_search_by_image`` call this method.

        Args:
            uris: Image paths, ``data:`` URIs, or ``http(s)`` URLs when the media policy allows URLs.

        Returns:
            One L2-normalised vector of Python floats per image.

        Raises:
            MediaError: an image could not be read or was refused by the media policy.
        """
        vectors = self._embedder.embed([Image(uri) for uri in uris], role="document")
        return vectors.tolist()  # type: ignore[no-any-return]

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image` (runs in an executor thread)."""
        return await run_in_executor(None, self.embed_image, uris)
