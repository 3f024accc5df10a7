"""Load a routing file and report every problem by file, line and column.

The routing file is YAML with one ``routing:`` section. It is read with the rule
loader's YAML reader (YAML 1.2 scalars, duplicate-key detection, the position
of every key), validated against ``RoutingFile``, and each pydantic error is
placed on the key it concerns, in the same ``file:line:column: error: field:
message`` form that ``burnrate check`` prints. Names that refer to nothing (an
unknown receiver or time interval) are reported at the key that names them.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from detector.errors import Problem, RuleError
from detector.ruleload import Document, describe_error, read_document
from routing.config import (
    DeliverySettings,
    InhibitRule,
    ReceiverConfig,
    Route,
    RoutingConfig,
    RoutingFile,
    Silence,
    TimeInterval,
    TimeRange,
    reference_problems,
)

YamlPath = tuple[str | int, ...]

_RECEIVER_MODELS: dict[str, type[BaseModel]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(ReceiverConfig)[0])
}
_LIST_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "inhibit_rules": InhibitRule,
    "silences": Silence,
    "time_intervals": TimeInterval,
    "times": TimeRange,
}


def check_routing(
    path: Path, environ: Mapping[str, str] | None = None, *, placeholders: bool = False
) -> tuple[RoutingConfig | None, list[Problem]]:
    """Load the routing file at ``path``; return the config (``None`` on errors) and problems.

    ``environ`` supplies the variables that ``${ENV:NAME}`` and ``*_env`` refer
    to; it defaults to the process environment. ``placeholders`` lets secrets
    that are not set stand in as placeholders, for dry runs that send nothing.
    """
    if not path.is_file():
        return None, [Problem(path, 0, 0, "", "routing file not found", "error")]
    problems: list[Problem] = []
    document = read_document(path, problems)
    if document is None or problems:
        return None, problems
    if not isinstance(document.data, dict) or "routing" not in document.data:
        message = "a routing file has one top-level section 'routing:': add it"
        return None, [document.problem((), message)]

    context = {"environ": environ, "placeholders": placeholders}
    try:
        routing_file = RoutingFile.model_validate(document.data, context=context)
    except ValidationError as error:
        details = error.errors(include_url=False)
        return None, _sorted([validation_problem(document, d) for d in details])
    config = routing_file.routing
    references = [document.problem(p, m) for p, m in reference_problems(config)]
    if references:
        return None, _sorted(references)
    return config, []


def load_routing(
    path: Path, environ: Mapping[str, str] | None = None, *, placeholders: bool = False
) -> RoutingConfig:
    """Load the routing file at ``path``; raise ``RuleError`` listing every error."""
    config, problems = check_routing(path, environ, placeholders=placeholders)
    if config is None:
        raise RuleError(problems)
    return config


def validation_problem(document: Document, detail: ErrorDetails) -> Problem:
    """Place one pydantic error of a routing section on the key it concerns."""
    path = _strip_union_tags(tuple(detail["loc"]), document.data)
    if detail["type"] == "extra_forbidden":
        return document.problem(path, _unknown_field(path))
    if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
        types = ", ".join(_RECEIVER_MODELS)
        path = (*path, "type")
        if detail["type"] == "union_tag_not_found":
            return document.problem(path, f"missing required field 'type': use one of {types}")
        tag = (detail.get("ctx") or {}).get("tag")
        return document.problem(path, f"invalid receiver type {tag!r}: use one of {types}")
    return document.problem(path, describe_error(detail))


def _strip_union_tags(loc: YamlPath, data: Any) -> YamlPath:
    """Drop the receiver type that pydantic inserts after ``receivers[i]``."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        previous = loc[index - 1] if index else None
        if isinstance(previous, int) and isinstance(current, dict) and current.get("type") == part:
            continue
        path.append(part)
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(path)


def _unknown_field(path: YamlPath) -> str:
    name = str(path[-1])
    model = _model_at(path[:-1])
    if model is None:
        return f"unknown field {name!r}: remove it"
    allowed = [info.alias or field for field, info in model.model_fields.items()]
    close = difflib.get_close_matches(name, allowed, n=1)
    listing = ", ".join(allowed)
    if close:
        return f"unknown field {name!r}: did you mean {close[0]!r}? Allowed: {listing}"
    return f"unknown field {name!r}: remove it or use one of {listing}"


def _model_at(path: YamlPath) -> type[BaseModel] | None:
    if path == ():
        return RoutingFile
    if path == ("routing",):
        return RoutingConfig
    if path[-1] == "route" or (len(path) >= 2 and path[-2] == "routes"):
        return Route
    if path[-1] == "delivery":
        return DeliverySettings
    if len(path) >= 2 and isinstance(path[-1], int):
        return _LIST_ITEM_MODELS.get(str(path[-2]))
    return None


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line, p.column))
