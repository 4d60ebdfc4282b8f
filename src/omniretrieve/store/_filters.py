"""Metadata filters (``where=``): checked, and translated into Chroma's ``where``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omniretrieve.documents import RESERVED_PREFIXES, validate_metadata
from omniretrieve.errors import InvalidInputError

OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$not_contains"}
)
"""The comparison operators a filter may use."""

MAX_DEPTH = 32
"""How deeply ``$and`` / ``$or`` may nest in one filter (deeper is refused, not recursed into)."""


def chroma_where(where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Translate a metadata filter into a Chroma ``where`` on the caller's own keys.

    Accepts Chroma's filter language (``{"lang": "en"}``, ``{"year": {"$gte": 2000}}``,
    ``{"$or": [...]}``, ``{"$and": [...]}``); a mapping of several keys means all must hold (it
    becomes an ``$and``). Keys are the caller's metadata keys; omniretrieve's own (``omni:...``)
    cannot be filtered on.

    Raises:
        InvalidInputError: a reserved or malformed key, an unknown operator, a bad value, or
            ``$and`` / ``$or`` nested more than :data:`MAX_DEPTH` deep.
    """
    return _where(where, 0)


def _where(where: Any, depth: int) -> dict[str, Any] | None:
    if depth > MAX_DEPTH:
        raise InvalidInputError(
            "where", f"$and/$or nest more than {MAX_DEPTH} levels deep; flatten the filter"
        )
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InvalidInputError("where", f"a filter is a mapping, not {type(where).__name__}")
    if not where:
        return None
    clauses = [_clause(key, value, depth) for key, value in where.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _clause(key: Any, value: Any, depth: int) -> dict[str, Any]:
    if key in ("$and", "$or"):
        return _logical(key, value, depth + 1)
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise InvalidInputError("where", f"{key!r} is not a metadata key or one of '$and', '$or'")
    if key.startswith(RESERVED_PREFIXES):
        raise InvalidInputError("where", f"{key!r} is reserved: filter on your own metadata keys")
    if isinstance(value, Mapping):
        return _comparison(key, value)
    validate_metadata({key: value}, name="where")
    return {key: value}


def _logical(key: str, value: Any, depth: int) -> dict[str, Any]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise InvalidInputError("where", f"{key} takes a non-empty list of filters")
    subs = [c for c in (_where(v, depth) for v in value) if c]
    if not subs:
        raise InvalidInputError("where", f"{key} holds only empty filters")
    return subs[0] if len(subs) == 1 else {key: subs}


def _comparison(key: str, value: Mapping[Any, Any]) -> dict[str, Any]:
    if len(value) != 1:
        raise InvalidInputError("where", f"the condition on {key!r} needs exactly one operator")
    op, operand = next(iter(value.items()))
    if op not in OPERATORS:
        raise InvalidInputError(
            "where", f"unknown operator {op!r} on {key!r}; use one of {sorted(OPERATORS)}"
        )
    if op in ("$in", "$nin"):
        if isinstance(operand, str) or not isinstance(operand, Sequence) or not operand:
            raise InvalidInputError("where", f"{op} on {key!r} takes a non-empty list")
        validate_metadata({key: list(operand)}, name="where")
    else:
        validate_metadata({key: operand}, name="where")
    return {key: {op: list(operand) if isinstance(operand, tuple) else operand}}


__all__ = ["MAX_DEPTH", "OPERATORS", "chroma_where"]
