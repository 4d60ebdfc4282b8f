"""Judged-query sets: queries plus graded judgments, as ``omniretrieve eval`` reads them from files.

:func:`load_judged_queries` documents the file format; the README shows a complete example.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from omniretrieve.errors import InvalidInputError

if TYPE_CHECKING:
    import os

    from omniretrieve.documents import Kind, SearchHit
    from omniretrieve.types import ItemInput

TARGETS: tuple[str, ...] = ("mixed", "text", "image", "audio", "video", "combined")
"""What a judged query may search: ``"mixed"`` (every kind of document) or one kind."""

QUERY_PARTS: tuple[str, ...] = ("text", "image", "audio", "video")
"""The keys of a query entry that hold its content (media paths relative to the queries file)."""


@dataclass(frozen=True)
class JudgedQuery:
    """One query of a judged set.

    Attributes:
        id: The query's id, the key of its judgments.
        item: What is searched: a text (``str``), an :class:`~omniretrieve.types.Image`,
            :class:`~omniretrieve.types.Audio` or :class:`~omniretrieve.types.Video`, or a dict of
            several parts (``{"text": ..., "image": Image(...)}``, a combined query).
        modality: The query's parts joined by ``+``: ``"text"``, ``"image"``, ``"text+image"``.
        target: What it searches: ``"mixed"`` (every kind of document) or one kind.
    """

    id: str
    item: ItemInput
    modality: str
    target: str = "mixed"

    @property
    def kinds(self) -> tuple[Kind, ...] | None:
        """The document kinds searched (``modalities=`` of :meth:`Store.search`); ``None`` for all."""
        return None if self.target == "mixed" else (cast("Kind", self.target),)

    @property
    def group(self) -> str:
        """The query's group, ``modality->target``: ``"text->mixed"``, ``"image->image"``, ..."""
        return f"{self.modality}->{self.target}"


@dataclass(frozen=True)
class JudgedQueries:
    """Queries with graded judgments, and how to name stored documents the way the judgments do.

    A hit is named, in this order: by ``docs.json`` (its source file's entry), by its store id if
    the judgments use it, by its source path relative to :attr:`base`, by its file stem; else by
    its store id. Documents indexed under their own ids (``ids=``) need none of this.

    Attributes:
        queries: The queries, in file order.
        qrels: ``{query id: {document name: grade}}``; grade > 0 is relevant.
        base: The folder relative paths in the judgments are resolved from (the judgments
            file's), or ``None``.
        names_by_path: Resolved file path -> document name (read from ``docs.json``).
    """

    queries: tuple[JudgedQuery, ...]
    qrels: Mapping[str, Mapping[str, int]]
    base: Path | None = None
    names_by_path: Mapping[Path, str] = field(default_factory=dict)

    @cached_property
    def judged_names(self) -> frozenset[str]:
        """Every document name the judgments mention."""
        return frozenset(d for docs in self.qrels.values() for d in docs)

    def name_of(self, hit: SearchHit) -> str:
        """The judgments' name for a hit (see the class docstring)."""
        path = source_path(hit)
        if path is not None and self.names_by_path:
            name = self.names_by_path.get(path.resolve())
            if name is not None:
                return name
        judged = self.judged_names
        if hit.id in judged or path is None:
            return hit.id
        if self.base is not None:
            try:
                rel: str | None = path.resolve().relative_to(self.base.resolve()).as_posix()
            except ValueError:
                rel = None
            if rel is not None and rel in judged:
                return rel
        return path.stem if path.stem in judged else hit.id

    def groups(self) -> dict[str, list[str]]:
        """Query ids by group (:attr:`JudgedQuery.group`), groups in order of first appearance."""
        out: dict[str, list[str]] = {}
        for q in self.queries:
            out.setdefault(q.group, []).append(q.id)
        return out


def source_path(hit: SearchHit) -> Path | None:
    """The local file a hit came from, if its source is a ``file://`` URI (judged sets name it so)."""
    source = hit.document.source
    if not source:
        return None
    parts = urlsplit(source)
    if parts.scheme != "file":
        return None
    return Path(url2pathname(unquote(parts.path)))


def load_judged_queries(
    folder: str | os.PathLike[str] | None = None,
    *,
    queries: str | os.PathLike[str] | None = None,
    judgments: str | os.PathLike[str] | None = None,
) -> JudgedQueries:
    """Read a judged-query set: ``folder/queries.json`` and ``folder/judgments.json``, or two files.

    ``queries`` and ``judgments`` name the files directly, or replace one of the folder's. A
    ``docs.json`` beside the judgments file, when there is one, maps document names to files
    (``{name: {"path": path relative to it}}``), as :meth:`DemoWorld.write` writes it.

    Queries file: a JSON list of objects, each with ``"id"`` (a string or an integer), at least one
    of ``"text"`` (a string), ``"image"``, ``"audio"``, ``"video"`` (paths relative to the queries
    file; several parts make one combined query), and optionally ``"target"``: ``"mixed"`` (the
    default, every kind of document) or a kind (``"text"``, ``"image"``, ``"audio"``, ``"video"``,
    ``"combined"``). Other keys are ignored.

    Judgments file: ``{query id: {document name: grade}}``, an integer grade, > 0 for relevant. A
    document is named by its store id, its ``docs.json`` name, its path relative to the judgments
    file's folder, or its file stem.

    Raises:
        InvalidInputError: no folder nor both files; a file is missing or not valid JSON (the error
            names the file, line and column); an entry is malformed (the error names the file and
            the entry: ``queries.json[3].target``, ``judgments.json["q1"]["doc"]``).
    """
    if folder is not None:
        queries = queries if queries is not None else Path(folder) / "queries.json"
        judgments = judgments if judgments is not None else Path(folder) / "judgments.json"
    if queries is None or judgments is None:
        raise InvalidInputError("judged queries", "give a folder, or a queries file and a judgments file")
    queries_file, judgments_file = Path(queries), Path(judgments)
    parsed = _parse_queries(_read_json(queries_file), queries_file)
    qrels = _parse_qrels(_read_json(judgments_file), judgments_file)
    return JudgedQueries(
        parsed, qrels, judgments_file.parent, _read_docs_index(judgments_file.parent / "docs.json")
    )


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInputError(str(path), "no such file") from exc
    except (OSError, ValueError) as exc:
        raise InvalidInputError(str(path), f"not readable: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{path}, line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}"
        ) from exc


def _parse_queries(raw: Any, path: Path) -> tuple[JudgedQuery, ...]:
    if not isinstance(raw, list):
        raise InvalidInputError(str(path), "must hold a JSON list of queries")
    out: list[JudgedQuery] = []
    seen: set[str] = set()
    for n, entry in enumerate(raw):
        query = _parse_query(entry, f"{path}[{n}]", path.parent)
        if query.id in seen:
            raise InvalidInputError(f"{path}[{n}].id", f"query id {query.id!r} appears twice")
        seen.add(query.id)
        out.append(query)
    return tuple(out)


def _parse_query(entry: Any, where: str, base: Path) -> JudgedQuery:
    from omniretrieve.types import Audio, Image, Video

    if not isinstance(entry, dict) or "id" not in entry:
        raise InvalidInputError(where, "each query needs an 'id'")
    qid = entry["id"]
    if isinstance(qid, bool) or not isinstance(qid, (str, int)):
        raise InvalidInputError(f"{where}.id", "must be a string or an integer")
    wrappers = {"image": Image, "audio": Audio, "video": Video}
    parts: dict[str, Any] = {}
    for key in QUERY_PARTS:
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInputError(
                f"{where}.{key}", "must be a string" + ("" if key == "text" else " (a path)")
            )
        parts[key] = value if key == "text" else wrappers[key](base / value)
    if not parts:
        raise InvalidInputError(where, "a query needs 'text', 'image', 'audio' or 'video'")
    target = entry.get("target", "mixed")
    if target not in TARGETS:
        raise InvalidInputError(f"{where}.target", f"must be one of {list(TARGETS)}, not {target!r}")
    item: ItemInput = next(iter(parts.values())) if len(parts) == 1 else parts
    return JudgedQuery(str(qid), item, "+".join(parts), target)


def _parse_qrels(raw: Any, path: Path) -> dict[str, dict[str, int]]:
    if not isinstance(raw, dict):
        raise InvalidInputError(str(path), "must hold {query id: {document: grade}}")
    qrels: dict[str, dict[str, int]] = {}
    for qid, docs in raw.items():
        if not isinstance(docs, dict):
            raise InvalidInputError(f"{path}[{qid!r}]", "must be {document: grade}")
        grades: dict[str, int] = {}
        for doc, grade in docs.items():
            if (
                isinstance(grade, bool)
                or not isinstance(grade, (int, float))
                or not float(grade).is_integer()
            ):
                raise InvalidInputError(
                    f"{path}[{qid!r}][{doc!r}]", f"a grade must be an integer, not {grade!r}"
                )
            grades[doc] = int(grade)
        qrels[qid] = grades
    return qrels


def _read_docs_index(path: Path) -> dict[Path, str]:
    if not path.is_file():
        return {}
    data = _read_json(path)
    names: dict[Path, str] = {}
    if isinstance(data, dict):
        for doc_id, info in data.items():
            if isinstance(info, dict) and isinstance(info.get("path"), str):
                names[(path.parent / info["path"]).resolve()] = str(doc_id)
    return names


__all__ = ["QUERY_PARTS", "TARGETS", "JudgedQueries", "JudgedQuery", "load_judged_queries", "source_path"]
