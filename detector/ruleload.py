"""Load rule files into a ``RuleSet`` and report every problem by file, line and column.

Pydantic reports an invalid value by its path, such as
``('rules', 2, 'absolute', 'window')``, and PyYAML drops source positions once it
has built Python objects. The loader therefore keeps PyYAML's node tree, records
the position of every mapping key and sequence item under its path, and maps each
validation error back to that position. A finding inside a mapping points at the
key, so ``rules[2].window`` points at ``window:``.

Each file is validated as a ``RuleFile`` first. When every file is valid, the
files are merged into one ``RuleSet``. The checks across entries (repeated ids,
unknown budget references, a second ``defaults`` section) run here rather than in
``RuleSet``, because only the loader has the file and line of each entry.
``RuleSet`` still validates the merged result. The checks across entries also
cover the entries of invalid files that are valid on their own, so one run
reports both kinds of error.

Scalars follow the YAML 1.2 core schema instead of PyYAML's YAML 1.1 rules, which
read ``no`` as false, ``1:30`` as 90 and ``010`` as 8 and would silently change
tenant ids and durations. Numbers with a fraction or exponent become ``Decimal``,
so money never passes through float.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from detector.config import (
    ALL_TENANTS,
    Budget,
    Defaults,
    FieldError,
    ForecastRule,
    PriceOverride,
    RateOfChangeRule,
    Rule,
    RuleFile,
    RuleSet,
    Tenant,
    ThresholdRule,
)
from detector.errors import Problem, RuleError, Severity

__all__ = ["Problem", "RuleError", "check_rules", "load_rules", "run_check"]

RULE_FILE_SUFFIXES = (".yaml", ".yml")
MIN_WINDOW_S = 60

# A path into the loaded YAML data, in the form of a pydantic error ``loc``.
YamlPath = tuple[str | int, ...]

# ---------------------------------------------------------------------------
# YAML reading
# ---------------------------------------------------------------------------

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"

_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML12_INT = re.compile(r"^[-+]?[0-9]+$")
_YAML12_FLOAT = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"
    r"|^[-+]?\.(?:inf|Inf|INF)$"
    r"|^\.(?:nan|NaN|NAN)$"
)


class _RuleLoader(yaml.SafeLoader):
    """A SafeLoader with YAML 1.2 core scalars that records duplicate mapping keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[tuple[yaml.Node, yaml.Node]] = []

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        self._record_duplicate_keys(node)
        return super().construct_mapping(node, deep)

    def _record_duplicate_keys(self, node: yaml.MappingNode) -> None:
        # Runs before the merge keys are expanded: a key that overrides a merged
        # one is intended, a key written twice in the same mapping is not.
        first_nodes: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            identity = (key_node.tag, key_node.value)
            if identity in first_nodes:
                self.duplicate_keys.append((first_nodes[identity], key_node))
            else:
                first_nodes[identity] = key_node


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    text = str(loader.construct_scalar(node))
    if not _YAML12_BOOL.match(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"invalid boolean {text!r}: use true or false", node.start_mark
        )
    return text.lower() == "true"


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if not _YAML12_INT.match(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"invalid integer {text!r}", node.start_mark
        )
    return int(text)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node))
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return Decimal("-Infinity" if lowered.startswith("-") else "Infinity")
    if lowered == ".nan":
        return Decimal("NaN")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(
            None, None, f"invalid number {text!r}", node.start_mark
        ) from None


# Keep only the null and merge (``<<``) resolvers of YAML 1.1, then add the YAML 1.2
# bool, int and float ones. Timestamps and the other YAML 1.1 types stay strings.
_RuleLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag in (_NULL_TAG, _MERGE_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RuleLoader.add_implicit_resolver(_BOOL_TAG, _YAML12_BOOL, list("tTfF"))
_RuleLoader.add_implicit_resolver(_INT_TAG, _YAML12_INT, list("-+0123456789"))
_RuleLoader.add_implicit_resolver(_FLOAT_TAG, _YAML12_FLOAT, list("-+.0123456789"))
_RuleLoader.add_constructor(_BOOL_TAG, _construct_bool)
_RuleLoader.add_constructor(_INT_TAG, _construct_int)
_RuleLoader.add_constructor(_FLOAT_TAG, _construct_decimal)


@dataclass(frozen=True)
class _Position:
    line: int  # 1-based
    column: int  # 1-based


def _position(mark: yaml.Mark) -> _Position:
    return _Position(mark.line + 1, mark.column + 1)


@dataclass
class _Document:
    """One parsed rule file with the position of every key and item by path."""

    path: Path
    data: Any
    root: _Position
    positions: dict[YamlPath, _Position] = field(default_factory=dict)
    key_paths: dict[int, YamlPath] = field(default_factory=dict)

    def position_of(self, path: YamlPath) -> _Position:
        """Return the position of the longest prefix of ``path`` found in the file."""
        for end in range(len(path), 0, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                return position
        return self.root

    def problem(
        self, path: YamlPath, message: str, severity: Severity = "error"
    ) -> Problem:
        position = self.position_of(path)
        return Problem(
            self.path,
            position.line,
            position.column,
            _field_name(path),
            message,
            severity,
        )


def _index_positions(
    document: _Document, node: yaml.Node, path: YamlPath, active: set[int]
) -> None:
    """Record the position of every mapping key and sequence item below ``node``.

    Runs after construction, when merge keys are already expanded in place, so a
    merged entry points at the mapping it was merged from. ``active`` contains
    the nodes on the current branch and stops the walk at a recursive alias.
    """
    if id(node) in active:
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key: str | int = key_node.value
            if key_node.tag == _INT_TAG and _YAML12_INT.match(key_node.value):
                key = int(key_node.value)
            child = (*path, key)
            document.positions[child] = _position(key_node.start_mark)
            document.key_paths[id(key_node)] = child
            _index_positions(document, value_node, child, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item_node in enumerate(node.value):
            child = (*path, index)
            document.positions[child] = _position(item_node.start_mark)
            _index_positions(document, item_node, child, active)
    active.discard(id(node))


def _field_name(path: YamlPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


# ---------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------

_YAML_HINTS = {
    "'\\t'": "indent with spaces because YAML does not allow tabs",
    "mapping values are not allowed": "put a value that contains ': ' in quotes",
    "found another document": "keep one document per file, without a second '---'",
    "could not determine a constructor": "remove the '!' tag",
}


_UTF8_BOM = b"\xef\xbb\xbf"


def _file_problem(path: Path, message: str) -> Problem:
    return Problem(path, 0, 0, "", message, "error")


def _decode(path: Path, raw: bytes) -> str | Problem:
    raw = raw.removeprefix(_UTF8_BOM)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        line = raw.count(b"\n", 0, error.start) + 1
        # The bytes before the error are valid UTF-8, so count their characters.
        column = len(raw[line_start : error.start].decode("utf-8")) + 1
        message = f"invalid UTF-8 byte 0x{raw[error.start]:02x}: save the file as UTF-8"
        return Problem(path, line, column, "", message, "error")


def _yaml_problem(path: Path, text: str, error: yaml.YAMLError) -> Problem:
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        message = (
            f"invalid YAML: character {chr(error.character)!r} is not allowed: "
            "remove it"
        )
        return Problem(path, line, column, "", message, "error")
    if not isinstance(error, yaml.MarkedYAMLError):
        return _file_problem(path, f"invalid YAML: {error}")
    return _marked_yaml_problem(path, error)


def _marked_yaml_problem(path: Path, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    message = f"invalid YAML: {error.problem or error.context}"
    if error.context and error.problem and error.problem.startswith("but "):
        # The composer splits one sentence: "expected a single document in the
        # stream", "but found another document".
        message = f"invalid YAML: {error.context}, {error.problem}"
    elif error.context and error.problem:
        message += f" ({error.context}"
        if error.context_mark is not None and error.context_mark is not mark:
            where = _position(error.context_mark)
            message += f" at line {where.line}, column {where.column}"
        message += ")"
    hint = next(
        (text for key, text in _YAML_HINTS.items() if key in str(error)),
        "check the indentation, quotes and brackets",
    )
    message += f": {hint}"
    if mark is None:
        return _file_problem(path, message)
    where = _position(mark)
    return Problem(path, where.line, where.column, "", message, "error")


def _read_document(path: Path, problems: list[Problem]) -> _Document | None:
    """Parse one file, adding its read and YAML problems to ``problems``."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        problems.append(_file_problem(path, f"cannot read file: {error.strerror}"))
        return None
    text = _decode(path, raw)
    if isinstance(text, Problem):
        problems.append(text)
        return None

    try:
        loader = _RuleLoader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        problems.append(_yaml_problem(path, text, error))
        return None
    except RecursionError:
        # PyYAML composes and constructs nested collections recursively.
        message = "invalid YAML: collections are nested too deeply: flatten them"
        problems.append(_file_problem(path, message))
        return None
    if node is None or data is None:
        message = "file is empty: add a section such as rules or delete the file"
        problems.append(_file_problem(path, message))
        return None

    document = _Document(path, data, _position(node.start_mark))
    _index_positions(document, node, (), set())
    problems.extend(_duplicate_key_problems(document, loader.duplicate_keys))
    return document


def _duplicate_key_problems(
    document: _Document, duplicates: list[tuple[yaml.Node, yaml.Node]]
) -> list[Problem]:
    problems = []
    for first, second in duplicates:
        first_line = first.start_mark.line + 1
        path = document.key_paths.get(id(second), (str(second.value),))
        message = (
            f"duplicate key {second.value!r}, first set at line {first_line}: "
            "YAML keeps only the last value, so remove one of them"
        )
        where = _position(second.start_mark)
        problems.append(
            Problem(
                document.path,
                where.line,
                where.column,
                _field_name(path),
                message,
                "error",
            )
        )
    return problems


# ---------------------------------------------------------------------------
# Validating one file
# ---------------------------------------------------------------------------

_DISCRIMINATOR = "tier"
_SECTION_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "tenants": Tenant,
    "budgets": Budget,
    "prices": PriceOverride,
}


def _tier_models() -> dict[str, type[BaseModel]]:
    """Map each ``tier`` value to its rule model, read from the ``Rule`` union."""
    union = typing.get_args(Rule)[0]
    models: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(union):
        tier = typing.get_args(model.model_fields[_DISCRIMINATOR].annotation)[0]
        models[tier] = model
    return models


_TIER_MODELS = _tier_models()


def _model_at(
    loc: YamlPath, root: type[BaseModel] = RuleFile
) -> type[BaseModel] | None:
    """Return the model that validates the mapping at ``loc`` (tags included).

    Below a ``root`` other than ``RuleFile`` only the top level is known.
    """
    # NOTE: a section added to RuleFile needs a case here, else an unknown field
    # in it is reported without the list of allowed fields.
    if loc == ():
        return root
    if root is not RuleFile:
        return None
    if loc == ("defaults",):
        return Defaults
    if len(loc) == 2 and isinstance(loc[1], int):
        return _SECTION_ITEM_MODELS.get(str(loc[0]))
    if len(loc) == 3 and loc[0] == "rules" and isinstance(loc[1], int):
        return _TIER_MODELS.get(str(loc[2]))
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _strip_tags(loc: YamlPath, data: Any) -> YamlPath:
    """Drop the union tags that pydantic inserts after a list index.

    Pydantic reports an error in the ``absolute`` member of ``rules[0]`` as
    ``('rules', 0, 'absolute', ...)``, but the file has no key ``absolute``.
    """
    path: list[str | int] = []
    current = data
    after_index = False
    for part in loc:
        is_tag = (
            after_index
            and isinstance(current, dict)
            and current.get(_DISCRIMINATOR) == part
        )
        after_index = isinstance(part, int)
        if is_tag:
            continue
        path.append(part)
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int):
            current = current[part] if 0 <= part < len(current) else None
        else:
            current = None
    return tuple(path)


def _show(value: Any) -> str:
    """Format a YAML value for a message the way the user wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Hints for missing required rule fields, where "add it" is not enough to act on.
_MISSING_HINTS = {
    "window": "a duration such as 5m or 1h",
    "threshold": (
        "the value that fires the alert in the signal's unit, such as dollars for "
        "spend, milliseconds for ttft_ms or a fraction from 0 to 1 for error_rate"
    ),
    "min_ratio": "the ratio to the baseline that fires the alert, above 1, such as 2",
    "min_increase": (
        "the smallest increase over the baseline worth an alert, in the signal's unit"
    ),
    "budget": "the id of a budget defined under budgets",
}

_COLLECTION_TYPES = {
    "tuple_type": "a list of '- ' items",
    "list_type": "a list of '- ' items",
    "dict_type": "a mapping of 'key: value' lines",
    "model_type": "a mapping of 'key: value' lines",
    "model_attributes_type": "a mapping of 'key: value' lines",
}


def _describe(error: ErrorDetails, root: type[BaseModel] = RuleFile) -> str:
    """Turn one pydantic error into a message with the bad value and the fix.

    ``root`` is the model of the whole file, which names the allowed fields.
    """
    kind = error["type"]
    loc = tuple(error["loc"])
    value = error.get("input")
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_field_message(loc, root)
    if kind == "missing":
        hint = "it"
        if loc[0] == "rules":
            hint = _MISSING_HINTS.get(str(loc[-1]), hint)
        return f"missing required field {loc[-1]!r}: add {hint}"
    if kind == "union_tag_not_found":
        tiers = ", ".join(_TIER_MODELS)
        return f"missing required field 'tier': set it to one of {tiers}"
    if kind == "union_tag_invalid":
        tiers = ", ".join(_TIER_MODELS)
        return f"invalid tier {_show(context.get('tag'))}: use one of {tiers}"
    if kind in ("value_error", "assertion_error") and "error" in context:
        return str(context["error"])
    if kind in _COLLECTION_TYPES:
        expected = _COLLECTION_TYPES[kind]
        if value is None:
            return f"no value: write {expected} here or remove the key"
        return f"invalid value {_show(value)}: write {expected} here"
    message = error["msg"]
    message = message[:1].lower() + message[1:]
    if kind == "string_type":
        message += ", so put the value in quotes"
    return f"invalid value {_show(value)}: {message}"


def _unknown_field_message(loc: YamlPath, root: type[BaseModel] = RuleFile) -> str:
    name = str(loc[-1])
    model = _model_at(loc[:-1], root)
    if model is None:
        return f"unknown field {name!r}: remove it"
    allowed = _field_names(model)
    close = difflib.get_close_matches(name, allowed, n=1)
    listing = ", ".join(allowed)
    if close:
        return f"unknown field {name!r}: did you mean {close[0]!r}? Allowed: {listing}"
    return f"unknown field {name!r}: remove it or use one of {listing}"


def _validate_document(document: _Document) -> tuple[RuleFile | None, list[Problem]]:
    if not isinstance(document.data, dict):
        sections = ", ".join(_field_names(RuleFile))
        message = (
            f"top level is {_show(document.data)}: a rule file is a mapping "
            f"with the sections {sections}"
        )
        return None, [document.problem((), message)]
    try:
        return RuleFile.model_validate(document.data), []
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_url=False):
            path = _error_path(detail, document.data)
            problems.append(document.problem(path, _describe(detail)))
        return None, problems


def _error_path(detail: ErrorDetails, data: Any) -> YamlPath:
    """Return the path in the file of the key that a pydantic error concerns."""
    path = _strip_tags(tuple(detail["loc"]), data)
    if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return (*path, _DISCRIMINATOR)
    # A model check across fields names the field it blames.
    blamed = (detail.get("ctx") or {}).get("error")
    if isinstance(blamed, FieldError):
        return (*path, blamed.field)
    return path


# ---------------------------------------------------------------------------
# Merging files and checking references between entries
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """The source of a merged entry: its file and its path in that file."""

    document: _Document
    path: YamlPath

    def problem(
        self, message: str, key: str | None = None, severity: Severity = "error"
    ) -> Problem:
        path = self.path if key is None else (*self.path, key)
        return self.document.problem(path, message, severity)

    def where(self, key: str | None = None) -> str:
        path = self.path if key is None else (*self.path, key)
        position = self.document.position_of(path)
        return f"{self.document.path}:{position.line}:{position.column}"


_ENTRY_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "defaults": TypeAdapter(Defaults),
    "tenants": TypeAdapter(Tenant),
    "budgets": TypeAdapter(Budget),
    "rules": TypeAdapter(Rule),
    "prices": TypeAdapter(PriceOverride),
}


@dataclass
class _Merged:
    """The entries of all files in file order, each with its origin."""

    defaults: list[tuple[Defaults, _Origin]] = field(default_factory=list)
    tenants: list[tuple[Tenant, _Origin]] = field(default_factory=list)
    budgets: list[tuple[Budget, _Origin]] = field(default_factory=list)
    rules: list[tuple[Rule, _Origin]] = field(default_factory=list)
    prices: list[tuple[PriceOverride, _Origin]] = field(default_factory=list)
    # The ids of invalid budget entries, which rules may still refer to.
    invalid_budget_ids: set[str] = field(default_factory=set)
    # The files that could not be read far enough to list their budget ids, so
    # an unknown budget reference may name a budget defined in one of them.
    unlisted_budget_files: list[Path] = field(default_factory=list)

    def mark_budgets_unlisted(self, path: Path) -> None:
        if path not in self.unlisted_budget_files:
            self.unlisted_budget_files.append(path)

    def add(self, rule_file: RuleFile, document: _Document) -> None:
        if rule_file.defaults is not None:
            self.defaults.append((rule_file.defaults, _Origin(document, ("defaults",))))
        for index, tenant in enumerate(rule_file.tenants):
            self.tenants.append((tenant, _Origin(document, ("tenants", index))))
        for index, budget in enumerate(rule_file.budgets):
            self.budgets.append((budget, _Origin(document, ("budgets", index))))
        for index, rule in enumerate(rule_file.rules):
            self.rules.append((rule, _Origin(document, ("rules", index))))
        for index, price in enumerate(rule_file.prices):
            self.prices.append((price, _Origin(document, ("prices", index))))

    def add_valid_entries(self, document: _Document) -> None:
        """Add the entries of a file with errors that are valid on their own."""
        data = document.data
        if not isinstance(data, dict):
            self.mark_budgets_unlisted(document.path)
            return
        defaults = _valid_entry("defaults", data.get("defaults"))
        if defaults is not None:
            self.defaults.append((defaults, _Origin(document, ("defaults",))))
        for section in ("tenants", "budgets", "rules", "prices"):
            items = data.get(section)
            if items is None:
                continue
            if not isinstance(items, list):
                if section == "budgets":
                    self.mark_budgets_unlisted(document.path)
                continue
            for index, item in enumerate(items):
                entry = _valid_entry(section, item)
                if entry is not None:
                    origin = _Origin(document, (section, index))
                    getattr(self, section).append((entry, origin))
                elif section == "budgets":
                    self._add_invalid_budget(item, document.path)

    def _add_invalid_budget(self, item: Any, path: Path) -> None:
        budget_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(budget_id, str):
            self.invalid_budget_ids.add(budget_id)
        else:
            self.mark_budgets_unlisted(path)


def _valid_entry(section: str, item: Any) -> Any:
    """Return ``item`` validated as an entry of ``section``, or None if invalid."""
    try:
        return _ENTRY_ADAPTERS[section].validate_python(item)
    except ValidationError:
        return None


def _reference_problems(merged: _Merged, base: Path) -> list[Problem]:
    problems = []
    if merged.defaults:
        first_defaults = merged.defaults[0][1]
        for _, origin in merged.defaults[1:]:
            message = (
                f"defaults are already set at {first_defaults.where()}: "
                "keep one defaults section for all rule files"
            )
            problems.append(origin.problem(message))

    tenant_ids = [(f"tenant id {t.id!r}", o) for t, o in merged.tenants]
    problems.extend(_repeated_id_problems(tenant_ids))
    budget_ids = [
        (f"budget id {b.id!r} for tenant {b.tenant!r}", o) for b, o in merged.budgets
    ]
    problems.extend(_repeated_id_problems(budget_ids))
    rule_ids = [(f"rule id {r.id!r}", o) for r, o in merged.rules]
    problems.extend(_repeated_id_problems(rule_ids))
    problems.extend(_budget_reference_problems(merged, base))
    return problems


def _repeated_id_problems(entries: list[tuple[str, _Origin]]) -> list[Problem]:
    """Report each entry whose description, such as ``rule id 'x'``, came before."""
    problems = []
    first_origins: dict[str, _Origin] = {}
    for described, origin in entries:
        first = first_origins.setdefault(described, origin)
        if first is origin:
            continue
        message = (
            f"{described} is already defined at {first.where('id')}: "
            "rename or remove one of them"
        )
        problems.append(origin.problem(message, "id"))
    return problems


def _budget_reference_problems(merged: _Merged, base: Path) -> list[Problem]:
    known = sorted({budget.id for budget, _ in merged.budgets})
    unresolved = [
        (rule, origin)
        for rule, origin in merged.rules
        if isinstance(rule, ForecastRule)
        and rule.budget not in known
        and rule.budget not in merged.invalid_budget_ids
    ]
    if not unresolved:
        return []
    if merged.unlisted_budget_files:
        # The budgets may be defined in a file that could not be read, so the
        # references are not reported as unknown. One warning names that file.
        return [_unchecked_references_problem(base, merged, len(unresolved))]
    problems = []
    for rule, origin in unresolved:
        if known:
            fix = f"use one of {', '.join(known)} or define it under budgets"
        else:
            fix = "no budget is defined, so define it under budgets"
        problems.append(
            origin.problem(f"unknown budget {rule.budget!r}: {fix}", "budget")
        )
    return problems


def _unchecked_references_problem(base: Path, merged: _Merged, count: int) -> Problem:
    files = merged.unlisted_budget_files
    names = ", ".join(str(path) for path in files)
    rules = "1 forecast rule" if count == 1 else f"{count} forecast rules"
    pronoun = "it" if len(files) == 1 else "them"
    message = (
        f"the budget references of {rules} were not checked because the budget "
        f"ids in {names} could not be read: fix {pronoun} and run check again"
    )
    return Problem(base, 0, 0, "", message, "warning")


def _build_ruleset(merged: _Merged, base: Path) -> RuleSet | Problem:
    sections: dict[str, Any] = {
        "tenants": tuple(tenant for tenant, _ in merged.tenants),
        "budgets": tuple(budget for budget, _ in merged.budgets),
        "rules": tuple(rule for rule, _ in merged.rules),
        "prices": tuple(price for price, _ in merged.prices),
    }
    if merged.defaults:
        sections["defaults"] = merged.defaults[0][0]
    try:
        return RuleSet.model_validate(sections)
    except ValidationError as error:
        # Reached only if RuleSet gains a check that the loader does not repeat.
        messages = "; ".join(detail["msg"] for detail in error.errors())
        return _file_problem(base, f"invalid rule set: {messages}")


# ---------------------------------------------------------------------------
# Warnings: valid settings that are probably mistakes
# ---------------------------------------------------------------------------


def _warnings(ruleset: RuleSet, merged: _Merged) -> list[Problem]:
    problems = []
    for rule, origin in merged.rules:
        problems.extend(_rule_warnings(ruleset, rule, origin))
    for budget, origin in merged.budgets:
        if Decimal(100) not in budget.thresholds_pct:
            listed = ", ".join(str(pct) for pct in budget.thresholds_pct)
            message = (
                f"thresholds_pct [{listed}] has no 100, so reaching the budget "
                "itself raises no alert: add 100"
            )
            problems.append(origin.problem(message, "thresholds_pct", "warning"))
    return problems


def _rule_warnings(ruleset: RuleSet, rule: Rule, origin: _Origin) -> list[Problem]:
    problems = []
    if (
        isinstance(rule, (ThresholdRule, RateOfChangeRule))
        and rule.window_s < MIN_WINDOW_S
    ):
        message = (
            f"window {rule.window_s}s is shorter than {MIN_WINDOW_S}s, so the "
            "total covers few requests and is noisy: use 1m or more"
        )
        problems.append(origin.problem(message, "window", "warning"))
    if isinstance(rule, RateOfChangeRule) and rule.min_increase == 0:
        message = (
            "min_increase is 0, so there is no absolute floor and tiny amounts can "
            "fire: set the smallest increase worth an alert, in the signal's unit"
        )
        problems.append(origin.problem(message, "min_increase", "warning"))
    if isinstance(rule, ForecastRule):
        problems.extend(_forecast_budget_warnings(ruleset, rule, origin))
        problems.extend(_token_budget_warnings(ruleset, rule, origin))
    return problems


def _token_budget_warnings(
    ruleset: RuleSet, rule: ForecastRule, origin: _Origin
) -> list[Problem]:
    """Warn when the rule's budget is in tokens: the predictive tier forecasts spend."""
    problems = []
    for budget in ruleset.budgets:
        if budget.id == rule.budget and budget.limit_usd is None:
            message = (
                f"budget {rule.budget!r} for tenant {budget.tenant!r} sets "
                "limit_tokens, but the forecast covers spend only, so this rule "
                "never fires for it: refer to a budget with limit_usd"
            )
            problems.append(origin.problem(message, "budget", "warning"))
    return problems


def _forecast_budget_warnings(
    ruleset: RuleSet, rule: ForecastRule, origin: _Origin
) -> list[Problem]:
    """Warn when the rule's budget is missing for some of the rule's tenants."""
    if ALL_TENANTS in rule.tenants:
        named = {tenant.id for tenant in ruleset.tenants}
        named |= {budget.tenant for budget in ruleset.budgets}
        for other in ruleset.rules:
            named |= set(other.tenants)
        named.discard(ALL_TENANTS)
        tenants = [*sorted(named), ALL_TENANTS]
    else:
        tenants = list(rule.tenants)
    missing = [t for t in tenants if ruleset.budget(rule.budget, t) is None]
    if not missing:
        return []
    names = [
        "tenants without budgets of their own" if t == ALL_TENANTS else f"tenant {t!r}"
        for t in missing
    ]
    message = (
        f"budget {rule.budget!r} does not exist for {' and '.join(names)}, so this "
        "rule never fires for them: define the budget for those tenants or for '*'"
    )
    return [origin.problem(message, "budget", "warning")]


def _routing_problems(document: _Document) -> list[Problem]:
    """Validate a file's ``routing`` section with the routing package's own checks.

    Secrets that are not set where the check runs (a CI job has none) stand in as
    placeholders, so the check covers the section's fields and names, such as a
    route naming an unknown receiver, without the secrets.
    """
    # A routing value that is not a mapping is already an error of the RuleFile.
    if not isinstance(document.data, dict) or not isinstance(
        document.data.get("routing"), dict
    ):
        return []
    # Imported here because routing.load imports this module's YAML helpers.
    from routing.config import RoutingFile, reference_problems
    from routing.load import validation_problem as routing_problem

    section = {"routing": document.data["routing"]}
    context = {"environ": None, "placeholders": True}
    try:
        config = RoutingFile.model_validate(section, context=context).routing
    except ValidationError as error:
        details = error.errors(include_url=False)
        return [routing_problem(document, detail) for detail in details]
    references = reference_problems(config)
    return [document.problem(path, message) for path, message in references]


# ---------------------------------------------------------------------------
# Public interface
# ---------------------------------------------------------------------------


def rule_files(path: Path) -> list[Path]:
    """Return the rule files at ``path``: the file itself, or a folder's YAML files.

    A folder contributes its ``*.yaml`` and ``*.yml`` files, sorted by name and not
    recursively. Names that start with a dot (editor backups, lock files) are skipped.
    """
    if not path.is_dir():
        return [path]
    return sorted(
        child
        for child in path.iterdir()
        if child.suffix in RULE_FILE_SUFFIXES
        and not child.name.startswith(".")
        and child.is_file()
    )


def check_rules(path: Path) -> tuple[RuleSet | None, list[Problem]]:
    """Load the rule files at ``path`` and return the rule set and every problem.

    The rule set is ``None`` when any problem is an error. Problems are sorted by
    file, line and column. Invalid rule files produce problems, not exceptions.
    """
    if not path.exists():
        return None, [_file_problem(path, "file or folder not found")]
    try:
        files = rule_files(path)
    except OSError as error:
        return None, [_file_problem(path, f"cannot list folder: {error.strerror}")]
    if not files:
        suffixes = " or ".join(f"*{suffix}" for suffix in RULE_FILE_SUFFIXES)
        message = f"folder has no rule files: add {suffixes} files"
        return None, [_file_problem(path, message)]

    problems: list[Problem] = []
    merged = _Merged()
    for file in files:
        document = _read_document(file, problems)
        if document is None:
            merged.mark_budgets_unlisted(file)
            continue
        rule_file, file_problems = _validate_document(document)
        problems.extend(file_problems)
        if rule_file is not None:
            merged.add(rule_file, document)
        else:
            merged.add_valid_entries(document)
        problems.extend(_routing_problems(document))

    problems.extend(_reference_problems(merged, path))
    if any(problem.severity == "error" for problem in problems):
        return None, _sorted(problems)
    ruleset = _build_ruleset(merged, path)
    if isinstance(ruleset, Problem):
        return None, [ruleset]
    return ruleset, _sorted(_warnings(ruleset, merged))


def load_rules(path: Path) -> RuleSet:
    """Load the rule files at ``path`` (a folder or one file) into a ``RuleSet``.

    Raises ``RuleError`` listing every error. Warnings are dropped, so call
    ``check_rules`` to see them.
    """
    ruleset, problems = check_rules(path)
    if ruleset is None:
        raise RuleError(
            [problem for problem in problems if problem.severity == "error"]
        )
    return ruleset


def run_check(path: Path, out: TextIO, strict: bool = False) -> int:
    """Print every problem of the rule files at ``path`` and a summary line.

    Returns the process exit code: 0 when there is no error, 1 when there is one.
    Warnings are printed but only fail the check (exit code 1) when ``strict`` is
    true, for CI jobs that treat risky settings as errors.
    """
    ruleset, problems = check_rules(path)
    for problem in problems:
        print(problem, file=out)

    errors = sum(problem.severity == "error" for problem in problems)
    warnings = len(problems) - errors
    counts = f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
    if ruleset is None:
        print(f"{path}: {counts}", file=out)
        return 1
    files = len(rule_files(path))
    contents = ", ".join(
        [
            _count(files, "file"),
            _count(len(ruleset.tenants), "tenant"),
            _count(len(ruleset.budgets), "budget"),
            _count(len(ruleset.rules), "rule"),
            _count(len(ruleset.prices), "price override"),
        ]
    )
    print(f"{path}: {contents}: {counts}", file=out)
    return 1 if strict and warnings else 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (str(p.path), p.line, p.column))


# The YAML reader with key positions and the error wording, for other YAML
# files that report problems the same way (the routing file).
Document = _Document
read_document = _read_document
describe_error = _describe
