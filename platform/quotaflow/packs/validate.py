"""From pack files to a CompiledPack: load, overlay `extends`, check schemas, link, compile.

Every problem is collected (none stops the others from being found) and reported at once
as `file:line: path: message`. Nothing downstream ever sees an unchecked document.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pluggy

from quotaflow.packs.compiled import CompiledPack, canonical_documents, content_hash
from quotaflow.packs.definitions import KINDS
from quotaflow.packs.link import Linker
from quotaflow.packs.loader import SourceDoc, read_source
from quotaflow.packs.problems import PackInvalid, Problem, path_text
from quotaflow.packs.schema import build
from quotaflow.packs.schema_check import kind_problem, schema_problems
from quotaflow.packs.versions import satisfies
from quotaflow.resources import definitions_dir

MAX_EXTENDS_DEPTH = 5


def load_pack(
    path: Path, search_paths: Sequence[Path] = (), plugins: pluggy.PluginManager | None = None
) -> CompiledPack:
    """Compile the pack at `path`; raise PackInvalid listing every problem."""
    docs, problems = collect_documents(path, search_paths)
    pack = compile_documents(docs, problems)
    if plugins is not None:
        extra = [p for found in plugins.hook.validate_pack(pack=pack) for p in found or ()]
        if extra:
            raise PackInvalid(extra)
    return pack


def compile_installed(content: Mapping[str, Any]) -> CompiledPack:
    """Compile a published version's stored content (no files involved)."""
    docs = [SourceDoc("(installed)", doc, {(): ("(installed)", 0)}) for doc in content["documents"]]
    return compile_documents(docs, [])


def collect_documents(
    path: Path, search_paths: Sequence[Path] = (), _chain: tuple[str, ...] = ()
) -> tuple[list[SourceDoc], list[Problem]]:
    """Documents of the pack at `path` with its `extends` base overlaid beneath them."""
    loaded = read_source(path)
    docs, problems = loaded.docs, list(loaded.problems)
    pack_doc = next((d for d in docs if _is_pack(d.data)), None)
    if pack_doc is None or not pack_doc.data.get("extends"):
        return docs, problems
    extends = str(pack_doc.data["extends"])
    base_id, _, constraint = extends.partition("@")
    file, line = pack_doc.locate(("extends",))
    if base_id in _chain or len(_chain) >= MAX_EXTENDS_DEPTH:
        cycle = " -> ".join([*_chain, base_id])
        problems.append(
            Problem(file, line, "extends", f"packs extend each other in a loop: {cycle}")
        )
        return docs, problems
    places = [*search_paths, _root_folder(path).parent, definitions_dir() / "packs"]
    base_path = next((p / base_id for p in places if (p / base_id).exists()), None)
    if base_path is None:
        looked = ", ".join(dict.fromkeys(str(p) for p in places))
        problems.append(
            Problem(file, line, "extends", f"base pack '{base_id}' not found (looked in: {looked})")
        )
        return docs, problems
    base_docs, base_problems = collect_documents(base_path, search_paths, (*_chain, base_id))
    problems.extend(base_problems)
    base_pack = next((d for d in base_docs if _is_pack(d.data)), None)
    base_version = str(base_pack.data.get("version", "0")) if base_pack else "0"
    if constraint and not satisfies(base_version, constraint):
        problems.append(
            Problem(
                file,
                line,
                "extends",
                f"base pack '{base_id}' is version {base_version}, "
                f"which does not satisfy {constraint}",
            )
        )
    return overlay(base_docs, docs), problems


def _root_folder(path: Path) -> Path:
    return path if path.is_dir() else path.resolve().parent / path.stem


def _is_pack(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") == "pack"


def _doc_key(doc: SourceDoc) -> tuple[str, str] | None:
    data = doc.data
    if isinstance(data, dict) and isinstance(data.get("kind"), str):
        return ("pack", "") if data["kind"] == "pack" else (data["kind"], str(data.get("id")))
    return None


def overlay(base: list[SourceDoc], child: list[SourceDoc]) -> list[SourceDoc]:
    """Child documents merged over base ones with the same kind and id; the rest kept."""
    merged: dict[tuple[str, str] | int, SourceDoc] = {}
    for i, doc in enumerate(base):
        merged[_doc_key(doc) or i] = doc
    for i, doc in enumerate(child):
        key = _doc_key(doc) or (len(base) + i)
        under = merged.get(key)
        merged[key] = doc if under is None else _merge_docs(under, doc)
    return list(merged.values())


def _merge_docs(base: SourceDoc, top: SourceDoc) -> SourceDoc:
    lines = dict(base.lines)
    lines.update(top.lines)
    return SourceDoc(top.file, merge_values(base.data, top.data), lines)


def merge_values(base: Any, top: Any) -> Any:
    """Mappings merge key by key; lists of items with ids merge by id; anything else is replaced."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = merge_values(base[key], value) if key in base else value
        return out
    if _all_with_ids(base) and _all_with_ids(top):
        by_id = {item["id"]: item for item in base}
        for item in top:
            by_id[item["id"]] = (
                merge_values(by_id[item["id"]], item) if item["id"] in by_id else item
            )
        return list(by_id.values())
    return top


def _all_with_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "id" in i for i in value)


# --- schema + link -----------------------------------------------------------------------


def compile_documents(docs: Iterable[SourceDoc], problems: list[Problem]) -> CompiledPack:
    """Schema-check, build and link documents into a CompiledPack, or raise PackInvalid."""
    docs, problems = list(docs), list(problems)
    problems_from_reading = bool(problems)
    located: dict[str, dict[str, tuple[Any, SourceDoc]]] = {kind: {} for kind in KINDS}
    raw: list[dict[str, Any]] = []
    broken: set[str] = set()  # ids of documents that failed their schema
    for doc in docs:
        definition = _check_and_build(doc, problems)
        if definition is None:
            if isinstance(doc.data, dict) and isinstance(doc.data.get("id"), str):
                broken.add(doc.data["id"])
            continue
        kind, def_id = doc.data["kind"], doc.data["id"]
        if def_id in located[kind]:
            first_file, first_line = located[kind][def_id][1].locate(("id",))
            file, line = doc.locate(("id",))
            problems.append(
                Problem(
                    file,
                    line,
                    "id",
                    f"duplicate {kind} id '{def_id}' (first defined at {first_file}:{first_line})",
                )
            )
            continue
        located[kind][def_id] = (definition, doc)
        raw.append(doc.data)
    packs = located["pack"]
    if not packs and not problems and not any(_is_pack(d.data) for d in docs):
        problems.append(
            Problem("(pack)", None, "(pack)", "no 'kind: pack' document found: add a pack.yaml")
        )
    elif len(packs) > 1:
        for _def, doc in list(packs.values())[1:]:
            file, line = doc.locate(())
            problems.append(
                Problem(file, line, "(document)", "a pack has exactly one 'kind: pack' document")
            )
    # Link what passed its schema even when other documents failed: all mistakes at once.
    # A file that could not be read may hold what others refer to: then only report the rest.
    linker = Linker(located, broken, references_complete=not problems_from_reading)
    linker.link()
    problems.extend(linker.problems)
    if problems:
        raise PackInvalid(sorted(problems, key=lambda p: (p.file, p.line or 0)))
    documents = canonical_documents(raw)
    return CompiledPack(
        pack=next(iter(packs.values()))[0],
        definitions={
            kind: {i: d for i, (d, _doc) in defs.items()} for kind, defs in located.items()
        },
        documents=tuple(documents),
        expressions=linker.expressions,
        computed_order=linker.computed_order,
        kpi_order=linker.kpi_order,
        content_hash=content_hash(documents),
    )


def _check_and_build(doc: SourceDoc, problems: list[Problem]) -> Any | None:
    wrong_kind = kind_problem(doc.data)
    if wrong_kind:
        file, line = doc.locate(("kind",))
        problems.append(Problem(file, line, "kind", wrong_kind))
        return None
    found = list(schema_problems(doc.data["kind"], doc.data))
    for path, message in found:
        file, line = doc.locate(path)
        problems.append(Problem(file, line, path_text(path), message))
    if any(not message.startswith("unknown key") for _path, message in found):
        return None
    # Only unknown keys: still link the rest of the document, so every mistake shows at once.
    return build(KINDS[doc.data["kind"]], _without(doc.data, [path for path, _m in found]))


def _without(data: Any, paths: list[tuple[str | int, ...]]) -> Any:
    data = copy.deepcopy(data)
    for path in paths:
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        del parent[path[-1]]
    return data
