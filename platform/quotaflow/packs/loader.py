"""Reading pack files: a folder, a .zip or one file of YAML/JSON documents, with line numbers.

YAML goes through the safe composer only and our own scalar rules, so `2025-01-01` stays
text, `no` stays text (only true/false are booleans), custom tags are refused, and every
value remembers the file and line it came from for error messages.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from quotaflow.packs.problems import Path_, Problem, path_text

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_FILES = 500
MAX_NODES_PER_FILE = 200_000  # bounds YAML alias expansion ("billion laughs")
PACK_SUFFIXES = (".yaml", ".yml", ".json")

Location = tuple[str, int]  # (file, line)


@dataclass(slots=True)
class SourceDoc:
    """One YAML/JSON document of a pack and where each of its values came from."""

    file: str
    data: Any
    lines: dict[Path_, Location] = field(default_factory=dict)

    def locate(self, path: Path_) -> Location:
        """File and line of the value at `path` (or of its nearest located parent)."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found:
                return found
        return (self.file, 0)


@dataclass(slots=True)
class LoadedFiles:
    """Documents read from a pack source, and the problems met while reading."""

    root: str
    docs: list[SourceDoc] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def size_text(n: int) -> str:
    """Bytes as people say it: 50.0 MB."""
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


# --- reading files -----------------------------------------------------------------------


def read_source(path: Path) -> LoadedFiles:
    """All documents of the pack at `path` (a folder, a .zip, or one YAML/JSON file)."""
    out = LoadedFiles(root=str(path))
    if not path.exists():
        out.problems.append(Problem(str(path), None, "(pack)", "no such file or folder"))
    elif path.is_dir():
        _read_all(_folder_files(path, out), out)
    elif path.suffix.lower() == ".zip":
        _read_all(_zip_files(path, out), out)
    elif path.suffix.lower() in PACK_SUFFIXES:
        _read_all(_single_file(path, out), out)
    else:
        out.problems.append(
            Problem(
                path.name,
                None,
                "(pack)",
                "a pack is a folder, a .zip, or a .yaml/.yml/.json file",
            )
        )
    return out


def _too_big(name: str, size: int) -> Problem:
    return Problem(
        name,
        None,
        "(file)",
        f"file is too large ({size_text(size)}); the limit is {size_text(MAX_FILE_BYTES)}",
    )


def _single_file(path: Path, out: LoadedFiles) -> Iterator[tuple[str, bytes]]:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        out.problems.append(_too_big(path.name, size))
        return
    yield path.name, path.read_bytes()


def _folder_files(root: Path, out: LoadedFiles) -> Iterator[tuple[str, bytes]]:
    total = 0
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in PACK_SUFFIXES and p.is_file())
    files = [
        p for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    if len(files) > MAX_FILES:
        out.problems.append(Problem(root.name, None, "(pack)", f"more than {MAX_FILES} files"))
        return
    for path in files:
        name = path.relative_to(root).as_posix()
        if not path.resolve().is_relative_to(root.resolve()):
            out.problems.append(Problem(name, None, "(file)", "links outside the pack folder"))
            continue
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            out.problems.append(_too_big(name, size))
            continue
        total += size
        if total > MAX_TOTAL_BYTES:
            out.problems.append(
                Problem(
                    name, None, "(pack)", f"the pack is larger than {size_text(MAX_TOTAL_BYTES)}"
                )
            )
            return
        else:
            yield name, path.read_bytes()


def _unsafe_member(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name) is not None


def _zip_files(path: Path, out: LoadedFiles) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        out.problems.append(Problem(path.name, None, "(zip)", f"not a readable .zip file ({exc})"))
        return
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        bad = [i.filename for i in members if _unsafe_member(i.filename)]
        if bad:
            out.problems.append(
                Problem(
                    path.name,
                    None,
                    "(zip)",
                    f"refused: the archive contains paths outside the pack ({', '.join(bad[:3])})",
                )
            )
            return
        if len(members) > MAX_FILES:
            out.problems.append(Problem(path.name, None, "(zip)", f"more than {MAX_FILES} files"))
            return
        declared = sum(i.file_size for i in members)
        if declared > MAX_TOTAL_BYTES:
            out.problems.append(_zip_bomb(path.name, declared))
            return
        prefix = _common_folder([i.filename for i in members])
        total = 0
        for info in members:
            if not info.filename.lower().endswith(PACK_SUFFIXES):
                continue
            name = info.filename[len(prefix) :]
            try:
                with archive.open(info) as stream:
                    # headers can lie about sizes: never read more than the limit
                    data = stream.read(MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError) as exc:
                out.problems.append(Problem(name, None, "(zip)", f"damaged or unreadable: {exc}"))
                return
            total += len(data)
            if len(data) > MAX_FILE_BYTES:
                out.problems.append(_too_big(name, len(data)))
                return
            if total > MAX_TOTAL_BYTES:
                out.problems.append(_zip_bomb(path.name, total))
                return
            yield name, data


def _zip_bomb(name: str, size: int) -> Problem:
    return Problem(
        name,
        None,
        "(zip)",
        f"refused: unpacks to more than {size_text(MAX_TOTAL_BYTES)} ({size_text(size)} or more)",
    )


def _common_folder(names: list[str]) -> str:
    firsts = {n.split("/", 1)[0] for n in names}
    if len(firsts) == 1 and all("/" in n for n in names):
        return firsts.pop() + "/"
    return ""


def _read_all(files: Iterator[tuple[str, bytes]], out: LoadedFiles) -> None:
    for name, data in files:
        docs, problems = parse_file(name, data)
        out.docs.extend(docs)
        out.problems.extend(problems)


# --- parsing -----------------------------------------------------------------------------


def parse_file(name: str, data: bytes) -> tuple[list[SourceDoc], list[Problem]]:
    """Documents in one YAML or JSON file, or the reason it cannot be read."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Problem(name, None, "(file)", f"not UTF-8 text (byte {exc.start})")]
    if name.lower().endswith(".json"):
        return _parse_json(name, text)
    return _parse_yaml(name, text)


def _parse_json(name: str, text: str) -> tuple[list[SourceDoc], list[Problem]]:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_pairs)
    except json.JSONDecodeError as exc:
        return [], [Problem(name, exc.lineno, "(file)", f"invalid JSON: {exc.msg}")]
    except _DuplicateKey as exc:
        return [], [Problem(name, None, "(file)", f"duplicate key '{exc.key}'")]
    # JSON is YAML: compose it again only to learn the line of every value
    docs, problems = _parse_yaml(name, text)
    if problems or len(docs) != 1:
        return [SourceDoc(name, data, {(): (name, 1)})], []
    return docs, []


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _parse_yaml(name: str, text: str) -> tuple[list[SourceDoc], list[Problem]]:
    docs: list[SourceDoc] = []
    problems: list[Problem] = []
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is None:
                continue
            doc = SourceDoc(name, None)
            builder = _NodeReader(name, doc, problems)
            doc.data = builder.read(node, ())
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f", column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "cannot be read"
        return [], [Problem(name, line, "(file)", f"YAML syntax error: {what}{column}")]
    except yaml.YAMLError as exc:
        return [], [Problem(name, None, "(file)", f"YAML error: {exc}")]
    except _TooManyNodes:
        msg = f"too many values (over {MAX_NODES_PER_FILE:,}; anchors/aliases expand too far?)"
        return [], [Problem(name, None, "(file)", msg)]
    return docs, problems


class _TooManyNodes(Exception):
    pass


_REFUSED = object()  # a value dropped after its problem was reported


_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|(0|[1-9][0-9]*)\.[0-9]*|0|[1-9][0-9]*)([eE][-+]?[0-9]+)?$")
_YAML = "tag:yaml.org,2002:"
_IMPLICIT = {f"{_YAML}{t}" for t in ("bool", "int", "float", "null", "timestamp")}


class _NodeReader:
    """Turns composed YAML nodes into plain data, recording each value's line."""

    def __init__(self, file: str, doc: SourceDoc, problems: list[Problem]) -> None:
        self.file, self.doc, self.problems, self.count = file, doc, problems, 0

    def read(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES_PER_FILE:
            raise _TooManyNodes
        self.doc.lines.setdefault(path, (self.file, node.start_mark.line + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = [self.read(item, (*path, i)) for i, item in enumerate(node.value)]
            return [item for item in items if item is not _REFUSED]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node, path)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key == "<<":
                self.problems.append(
                    self._problem(line, path, "YAML merge keys (<<) are not supported")
                )
                continue
            if key in out:
                self.problems.append(
                    self._problem(
                        line,
                        (*path, key),
                        f"duplicate key '{key}' (first at line {first_line[key]})",
                    )
                )
                continue
            first_line[key] = line
            self.doc.lines[(*path, key)] = (self.file, line)
            value = self.read(value_node, (*path, key))
            if value is not _REFUSED:
                out[key] = value
        return out

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            line = node.start_mark.line + 1
            self.problems.append(self._problem(line, path, "a key must be plain text"))
            return "?"
        value: str = node.value
        if (
            node.tag.startswith(f"{_YAML}python")
            or not node.tag.startswith(_YAML)
            and node.tag != "!"
        ):
            line = node.start_mark.line + 1
            self.problems.append(self._problem(line, path, f"YAML tag {node.tag} is not allowed"))
            return _REFUSED
        if node.style is not None or node.tag not in _IMPLICIT:
            return value  # quoted, or plainly text
        return _plain_scalar(value)

    def _problem(self, line: int, path: Path_, message: str) -> Problem:
        return Problem(self.file, line, path_text(path), message)


def _plain_scalar(value: str) -> Any:
    # Only what a consultant would expect: no dates, no yes/no/on/off, no octal or sexagesimal.
    lowered = value.lower()
    if lowered in ("", "~", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value


def dump_yaml(data: Any) -> str:
    """YAML text for a document, readable and loading back to the same data."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def documents_to_zip(files: dict[str, str]) -> bytes:
    """A .zip holding these text files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in sorted(files.items()):
            archive.writestr(name, text)
    return buffer.getvalue()
