"""Option spellings shared by the LangChain classes: ``media_policy=``, and its deprecated aliases.

Both omniretrieve integrations (LangChain and LlamaIndex) spell the media option
``media_policy=`` (an :class:`omniretrieve.MediaPolicy`). ``allow_urls=`` and ``media=`` (a
:class:`omniretrieve.MediaLoader`) still work, with a :class:`DeprecationWarning` naming
``media_policy=``.
"""

from __future__ import annotations

import warnings
from typing import Any

from omniretrieve import InvalidInputError, MediaLoader, MediaPolicy
from omniretrieve.types import describe

DEPRECATED_MEDIA_OPTIONS: tuple[str, ...] = ("allow_urls", "media")
"""The old spellings of ``media_policy=``."""


def translate_media_options(data: Any, owner: str) -> Any:
    """Constructor input with ``allow_urls=`` / ``media=`` turned into ``media_policy=`` (with a warning).

    ``allow_urls=True`` becomes ``MediaPolicy(allow_urls=True)``; ``media=loader`` is kept as the
    loader itself (its resolver and TLS context included), which :func:`media_loader` returns.

    Raises:
        InvalidInputError: an old spelling together with ``media_policy``, or ``media`` that is not
            a ``MediaLoader``.
    """
    if not isinstance(data, dict) or not set(DEPRECATED_MEDIA_OPTIONS) & data.keys():
        return data
    data = dict(data)
    given = {name: data.pop(name) for name in DEPRECATED_MEDIA_OPTIONS if name in data}
    warnings.warn(
        f"{owner}({', '.join(f'{name}=' for name in given)}) is deprecated: pass "
        "media_policy=omniretrieve.MediaPolicy(...) instead (e.g. MediaPolicy(allow_urls=True)), "
        "the spelling both omniretrieve integrations use",
        DeprecationWarning,
        stacklevel=4,  # the caller's line: here <- validator <- BaseModel.__init__ <- caller
    )
    if data.get("media_policy") is not None:
        raise InvalidInputError(
            owner, f"give media_policy only ({' and '.join(given)}: its deprecated spellings)"
        )
    media = given.get("media")
    if media is not None:
        if not isinstance(media, MediaLoader):
            raise InvalidInputError(describe(media), "media= must be an omniretrieve.MediaLoader")
        data["media_policy"] = media
    elif given.get("allow_urls"):
        data["media_policy"] = MediaPolicy(allow_urls=True)
    return data


def media_loader(media_policy: Any) -> MediaLoader | None:
    """The loader for a ``media_policy`` setting (``None``: the model's default loader).

    Raises:
        InvalidInputError: ``media_policy`` is not an ``omniretrieve.MediaPolicy``.
    """
    if media_policy is None:
        return None
    if isinstance(media_policy, MediaLoader):  # given as the deprecated ``media=``
        return media_policy
    if not isinstance(media_policy, MediaPolicy):
        raise InvalidInputError(describe(media_policy), "media_policy must be an omniretrieve.MediaPolicy")
    return MediaLoader(media_policy)
