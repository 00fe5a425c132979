"""Validated settings files: pydantic models in, one-line `ConfigError`s naming the field out.

Every settings file (batch job, model card, training config) is a pydantic model with `extra="forbid"`: a
misspelt field is an error, never silently ignored. `validate` turns pydantic's error list into the project's
one clear line, e.g. `run.workers: input should be a valid integer, got 'many'`, so every front-end reports a bad
file the same way. `error_line` does the same for any list of pydantic errors (the service's form fields), and
`replace` changes fields of a validated pydantic dataclass with the same checks and the same one-line errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, get_args

from pydantic import ConfigDict, TypeAdapter, ValidationError

from enlarge.errors import ConfigError, EnlargeError

# The settings every file model shares: unknown fields are errors, values are not coerced across types (a "2"
# is not the number 2, a 1 is not true), and a validated object does not change.
STRICT_SETTINGS = ConfigDict(extra="forbid", strict=True, frozen=True)
VALUE_ERROR_PREFIX = "Value error, "  # what pydantic puts before the message of a ValueError from a validator
UNKNOWN_FIELD_ERRORS = ("extra_forbidden", "unexpected_keyword_argument")  # models, dataclasses
PYDANTIC_FIELDS = "__pydantic_fields__"
MAX_SHOWN_INPUT = 60  # characters of a bad value repeated in a message

Model = TypeVar("Model")


def validate(
    model: type[Model], data: Mapping[str, Any], source: str, error: type[EnlargeError] = ConfigError
) -> Model:
    """`model` (a pydantic model or dataclass) built from `data`; `error` (ConfigError by default) with one line
    `SOURCE: field: problem`."""
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        raise error(f"{source}: {error_line(exc.errors(), model)}") from None


def replace(obj: Model, source: str, error: type[EnlargeError] = ConfigError, **changes: Any) -> Model:
    """A copy of the pydantic dataclass `obj` with `changes`, validated as when it was read (`dataclasses.replace`
    raises pydantic's ValidationError); `error` with one line `SOURCE: field: problem`."""
    try:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    except ValidationError as exc:
        raise error(f"{source}: {error_line(exc.errors(), type(obj))}") from None


def field_defaults(model: type) -> dict[str, Any]:
    """The default of each field of a pydantic model or dataclass that has one (factories called)."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in _fields_of(model).items()
        if not field.is_required()
    }


def error_line(errors: Sequence[Mapping[str, Any]], model: type | None = None) -> str:
    """The first of pydantic's errors as `field.path: what is wrong` (and how many more there are).

    With `model`, an unknown field's message lists the fields that are known at that place.
    """
    if not errors:
        return "the settings are not valid"
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    field = ".".join(str(part) for part in loc)
    kind = first.get("type", "")
    if kind == "missing":
        separator, problem = " ", "is missing"
    elif kind in UNKNOWN_FIELD_ERRORS:
        known = _known_fields(model, loc[:-1]) if model is not None else []
        separator, problem = " ", "is not a known field" + (f"; known: {', '.join(known)}" if known else "")
    else:
        message = str(first.get("msg", "invalid"))
        if kind == "value_error":  # our own validators' messages, as written
            problem = message.removeprefix(VALUE_ERROR_PREFIX)
        else:
            problem = message[:1].lower() + message[1:] + (f", got {_shown(first['input'])}" if "input" in first else "")
        separator = ": "
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{field}{separator}{problem}" if field else problem) + more


def _known_fields(model: type, path: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) pydantic model or dataclass at `path` below `model`; empty if none."""
    fields = _fields_of(model)
    for part in path:
        field = fields.get(str(part))
        fields = _fields_of(field.annotation) if field is not None else {}
    return list(fields)


def _fields_of(model: Any) -> dict[str, Any]:
    """A pydantic model's or pydantic dataclass's fields by name (both keep them in `__pydantic_fields__`); for an
    optional section (`Section | None`), the section's."""
    if not isinstance(model, type):
        return next((fields for option in get_args(model) if (fields := _fields_of(option))), {})
    fields = getattr(model, PYDANTIC_FIELDS, None)
    return fields if isinstance(fields, dict) else {}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_INPUT else text[:MAX_SHOWN_INPUT] + "…"
