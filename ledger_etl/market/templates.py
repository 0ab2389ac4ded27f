"""Chart templates: a user file (YAML or JSON) checked against the published JSON Schema.

The schema (`schemas/chart-template.schema.json`, also served by `ledger-etl templates schema`)
says what a file may hold; `validate_template` adds what a schema cannot say: that charts use
the template's own resolutions, epics and indicators, fit the grid and do not overlap. Every
problem names its field as a path (`layout.charts[1].resolution`), all at once.

A template's identity is the SHA-256 of its canonical JSON (keys sorted, no whitespace, UTF-8):
the same content in YAML or JSON, reformatted or with its keys reordered, is the same version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ledger_etl.errors import InputError

SCHEMA_RESOURCE = "schemas/chart-template.schema.json"
DEFAULT_LOOKBACK_BARS = 300
MAX_FILE_BYTES = 1_000_000


class TemplateError(InputError):
    """A template that cannot be used; `problems` lists every field at fault."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        super().__init__(f"template {source} is invalid: {shown}")


@dataclass(frozen=True)
class ChartTemplate:
    """A validated template: its content and the hash that identifies the content."""

    document: dict[str, Any]
    canonical: str
    sha256: str

    @property
    def name(self) -> str:
        return self.document["name"]


@cache
def template_schema() -> dict[str, Any]:
    text = resources.files("ledger_etl.market").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    return json.loads(text)


def canonical_json(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- reading files ------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (plain YAML keeps the last one silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_template_text(text: str, source: str) -> Any:
    """JSON when the source ends in .json (or the text starts with `{`), YAML otherwise."""
    if source.lower().endswith(".json") or text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as error:
            raise TemplateError(source, [f"line {error.lineno}: not JSON ({error.msg})"]) from None
        except ValueError as error:
            raise TemplateError(source, [str(error)]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise TemplateError(source, [f"{where}not YAML ({reason})"]) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} is given twice")
        seen[key] = value
    return seen


def load_template_file(path: Path) -> ChartTemplate:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise TemplateError(source, [f"cannot read it: {error.strerror or error}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise TemplateError(source, [f"larger than {MAX_FILE_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TemplateError(source, ["not UTF-8 text"]) from None
    return validate_template(parse_template_text(text, source), source)


# -- validation ---------------------------------------------------------------------------------
def field_path(parts: Any) -> str:
    """`("layout", "charts", 1, "epic")` -> `layout.charts[1].epic`; the root is `(template)`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(template)"


def _describe(error: ValidationError) -> str:
    where = list(error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        return f"{field_path([*where, missing])}: is required"
    if error.validator == "oneOf" and where == ["instruments"]:
        return "instruments: give either epics or watchlist (exactly one of them)"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{field_path(where)}: unknown field(s) {', '.join(map(repr, extra))}"
    return f"{field_path(where)}: {error.message}"


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(template_schema())


def schema_problems(document: Any) -> list[str]:
    found = sorted(
        _validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]
    )
    return list(dict.fromkeys(_describe(e) for e in found))


def _layout_problems(document: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    resolutions = document["resolutions"]
    epics = document["instruments"].get("epics")
    indicators = document.get("indicators", [])
    ids = [i["id"] for i in indicators]
    for n, ident in enumerate(ids):
        if ident in ids[:n]:
            problems.append(f"indicators[{n}].id: {ident!r} is used twice")
    for n, indicator in enumerate(indicators):
        params = indicator.get("params", {})
        if indicator["type"] == "MACD" and params.get("fast", 12) >= params.get("slow", 26):
            problems.append(f"indicators[{n}].params: fast must be shorter than slow")
    layout = document["layout"]
    rows, columns, taken = layout["rows"], layout["columns"], {}
    for n, chart in enumerate(layout["charts"]):
        where = f"layout.charts[{n}]"
        if chart["resolution"] not in resolutions:
            problems.append(
                f"{where}.resolution: {chart['resolution']!r} is not one of the template's "
                f"resolutions ({', '.join(resolutions)})"
            )
        if epics is not None and "epic" in chart and chart["epic"] not in epics:
            problems.append(f"{where}.epic: {chart['epic']!r} is not in instruments.epics")
        for k, ident in enumerate(chart.get("indicators", [])):
            if ident not in ids:
                problems.append(
                    f"{where}.indicators[{k}]: no indicator {ident!r} "
                    f"(the template defines {', '.join(ids) or 'none'})"
                )
        bottom = chart["row"] + chart.get("row_span", 1)
        right = chart["column"] + chart.get("column_span", 1)
        if bottom > rows or right > columns:
            problems.append(f"{where}: does not fit the {rows}x{columns} grid")
            continue
        for r in range(chart["row"], bottom):
            for c in range(chart["column"], right):
                if (r, c) in taken:
                    problems.append(
                        f"{where}: overlaps layout.charts[{taken[(r, c)]}] at row {r}, column {c}"
                    )
                taken.setdefault((r, c), n)
    return list(dict.fromkeys(problems))


def validate_template(document: Any, source: str = "(text)") -> ChartTemplate:
    """The template, or a TemplateError naming every field at fault."""
    problems = schema_problems(document)
    if not problems:
        problems = _layout_problems(document)
    if problems:
        raise TemplateError(source, problems)
    canonical = canonical_json(document)
    return ChartTemplate(document, canonical, hashlib.sha256(canonical.encode()).hexdigest())


def render_template(document: dict[str, Any], fmt: str) -> str:
    """The document as JSON (indented, keys sorted) or YAML; either imports to the same hash."""
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(document, sort_keys=True, allow_unicode=True)
    raise InputError(f"unknown export format {fmt!r}; use json or yaml")
