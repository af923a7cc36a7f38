"""Reading a policy document (YAML or JSON) into data plus the line of every path.

Every problem found later (schema, floors) is reported against a JSON-path-like `path`
(`$.tiers.T1.accepted_classes[2]`) and the 1-based line where that path starts in the source.
Duplicate keys, non-text keys, YAML merge keys and custom tags are refused: what a reviewer
reads must be exactly what is enforced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import PolicyError, PolicyInvalid

Path = tuple[str | int, ...]

MAX_SOURCE_CHARS = 64 * 1024
MAX_NODES = 5_000
MAX_DEPTH = 16
_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def render(path: Path) -> str:
    """`("tiers", "T1", "accepted_classes", 2)` → `$.tiers.T1.accepted_classes[2]`."""
    parts = ["$"]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            parts.append(f".{part}")
        else:
            parts.append(f"[{json.dumps(part)}]")
    return "".join(parts)


@dataclass(frozen=True)
class ParsedDocument:
    """The document's data, its format and where each path starts in the source."""

    data: Any
    format: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that has one (1 for the root)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return self.lines.get((), 1)

    def error(self, path: Path, message: str, rule: str) -> PolicyError:
        """A PolicyError located at `path`."""
        return PolicyError(path=render(path), line=self.line(path), message=message, rule=rule)


def _fail(line: int, message: str, rule: str, path: Path = ()) -> PolicyInvalid:
    return PolicyInvalid([PolicyError(path=render(path), line=line, message=message, rule=rule)])


class _NodeReader:
    """Turns a composed YAML node tree into plain data, recording lines as it goes."""

    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self.errors: list[PolicyError] = []
        self.nodes = 0
        self.constructor = yaml.SafeLoader("")

    def error(self, node: yaml.Node, path: Path, message: str, rule: str) -> None:
        line = node.start_mark.line + 1
        self.errors.append(PolicyError(render(path), line, message, rule))

    def read(self, node: yaml.Node, path: Path) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or len(path) > MAX_DEPTH:
            raise _fail(
                node.start_mark.line + 1,
                "The document is too large or too deeply nested (aliases count once per use).",
                "syntax.too_large",
                path,
            )
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, (*path, index)) for index, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError:
            self.error(node, path, f"Unsupported value or tag {node.tag!r}.", "syntax.value")
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR_TAG):
                self.error(key_node, path, "Keys must be plain text (no merge keys).", "syntax.key")
                continue
            key = key_node.value
            key_path = (*path, key)
            if key in result:
                self.error(key_node, key_path, f"Duplicate key {key!r}.", "syntax.duplicate_key")
                continue
            self.lines[key_path] = key_node.start_mark.line + 1
            result[key] = self.read(value_node, key_path)
        return result


def _read_yaml(text: str, fmt: str) -> ParsedDocument:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as bad:
        mark = bad.problem_mark or bad.context_mark
        reason = " ".join(part for part in (bad.context, bad.problem) if part)
        line = mark.line + 1 if mark else 1
        raise _fail(line, f"Not valid YAML: {reason}.", "syntax.yaml") from None
    except yaml.YAMLError as bad:
        raise _fail(1, f"Not valid YAML: {bad}.", "syntax.yaml") from None
    if root is None:
        raise _fail(1, "The document is empty.", "syntax.empty")
    reader = _NodeReader()
    data = reader.read(root, ())
    if reader.errors:
        raise PolicyInvalid(reader.errors)
    return ParsedDocument(data=data, format=fmt, lines=reader.lines)


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _json_lines(text: str) -> dict[Path, int]:
    """Lines of a JSON document: JSON is YAML flow syntax once tabs (whitespace only, in valid
    JSON) are spaces. Raises PolicyInvalid for what the YAML reader refuses (duplicate keys)."""
    return _read_yaml(text.replace("\t", " "), "json").lines


def _read_json(text: str) -> ParsedDocument:
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as bad:
        raise _fail(
            bad.lineno, f"Not valid JSON: {bad.msg} (column {bad.colno}).", "syntax.json"
        ) from None
    except _DuplicateKey as dup:
        try:
            _json_lines(text)
        except PolicyInvalid as located:
            if "syntax.duplicate_key" in located.rules:
                raise located from None
        raise _fail(1, f"Duplicate key {dup.args[0]!r}.", "syntax.duplicate_key") from None
    try:
        lines = _json_lines(text)
    except PolicyInvalid:
        lines = {}
    return ParsedDocument(data=data, format="json", lines=lines)


def _nul_errors(doc: ParsedDocument) -> list[PolicyError]:
    """Text the database cannot store (NUL) is refused where it occurs."""
    found: list[PolicyError] = []

    def walk(value: Any, path: Path) -> None:
        if isinstance(value, str) and "\x00" in value:
            found.append(doc.error(path, "Text may not contain NUL characters.", "syntax.value"))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key, path)
                walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, index))

    walk(doc.data, ())
    return found


def parse(text: str) -> ParsedDocument:
    """Parse a policy source: JSON when it starts with `{`, YAML otherwise.

    Raises PolicyInvalid (with line and path) for syntax problems, duplicate keys, an empty or
    oversized document.
    """
    if len(text) > MAX_SOURCE_CHARS:
        raise _fail(1, f"The document is over {MAX_SOURCE_CHARS} characters.", "syntax.too_large")
    doc = _read_json(text) if text.lstrip().startswith("{") else _read_yaml(text, "yaml")
    errors = _nul_errors(doc)
    if errors:
        raise PolicyInvalid(errors)
    return doc


# Requirement blocks are layered, most specific last: platform-wide defaults of the document,
# the tier, the case type (all tiers), the case type within the tier.
def layer_paths(tier: str, case_type: str) -> tuple[Path, ...]:
    """The document paths whose requirement blocks apply to (tier, case_type), in order."""
    return (
        ("defaults",),
        ("tiers", tier),
        ("case_types", case_type),
        ("tiers", tier, "case_types", case_type),
    )


def lookup(data: Any, path: Path) -> Any:
    """The value at `path` in `data`, or None when any step is missing."""
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def requirement_blocks(data: Any, tier: str, case_type: str) -> Iterator[tuple[Path, dict]]:
    """The requirement blocks present for (tier, case_type), least specific first."""
    for path in layer_paths(tier, case_type):
        block = lookup(data, path)
        if isinstance(block, dict):
            yield path, block


def effective(data: Any, tier: str, case_type: str) -> tuple[dict[str, Any], dict[Path, Path]]:
    """Merge the requirement layers for (tier, case_type).

    Returns the merged values and, for each field (`("cooling_off_seconds",)`, or
    `("artifact_lifetimes", "sms")` inside a nested block), the document path it came from.
    """
    merged: dict[str, Any] = {}
    sources: dict[Path, Path] = {}
    for base, block in requirement_blocks(data, tier, case_type):
        for key, value in block.items():
            if key == "case_types":
                continue
            if isinstance(value, dict):
                nested = merged.setdefault(key, {})
                for sub_key, sub_value in value.items():
                    nested[sub_key] = sub_value
                    sources[(key, sub_key)] = (*base, key, sub_key)
            else:
                merged[key] = value
                sources[(key,)] = (*base, key)
    return merged, sources
