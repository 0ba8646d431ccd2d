"""One validation path for configuration tables: TOML in, checked values out.

Every table a person writes (service and tracker settings, alert rules, scenario files)
is checked here, so every error has the same shape: the dotted path of the key at
fault, table included (``tracker.accel_std``, ``zones."a".incursion.p_open``,
``sensors[2].rate``), and what is wrong with it. A key the table does not know is
named as unknown even when a required key is also missing, because a misspelling
usually causes both (``duraton = 60`` leaves ``duration`` missing).

Two ways in, one set of checks:

- :func:`from_mapping` is dataclass-driven: the fields of a frozen dataclass are the
  known keys, their annotations the types (``Annotated[..., OneOf(...)]`` limits the
  values), and the defaults, or a ``base`` instance, fill what the table omits. Range
  checks that relate fields stay in the dataclass (``__post_init__``).
- :class:`Table` reads one key at a time, for tables whose keys depend on their
  content (a scenario sensor's keys depend on its kind); :meth:`Table.done` then names
  any key that was never read.

Each caller keeps its own error type (a subclass of :class:`ConfigError` with its own
message format); the checks raise it through :meth:`ConfigError.at`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self, TypeVar

__all__ = [
    "REQUIRED",
    "ConfigError",
    "OneOf",
    "Table",
    "check_boolean",
    "check_integer",
    "check_mapping",
    "check_number",
    "check_string",
    "check_strings",
    "from_mapping",
    "load_toml",
]

T = TypeVar("T")
REQUIRED: Any = object()  # the default of a key that must be given


class ConfigError(ValueError):
    """A configuration file or table that cannot be used; the message names the field.

    Parameters
    ----------
    message : str
        The whole message.
    field : str
        Dotted path of the offending key ("" when the error is about a whole file).
    """

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field

    @classmethod
    def at(cls, field: str, message: str) -> ConfigError:
        """The error for key ``field``; subclasses override this to keep their format."""
        return cls(f"{field}: {message}" if field else message, field)


@dataclass(frozen=True)
class OneOf:
    """Allowed values, for ``Annotated`` field types read by :func:`from_mapping`.

    Attributes
    ----------
    choices : tuple of str
        What a string (or each item of a tuple, or each value of a mapping) may be.
    keys : tuple of str, optional
        What the keys of a mapping may be.
    """

    choices: tuple[str, ...]
    keys: tuple[str, ...] | None = None


# ------------------------------------------------------------------------ value checks


def check_number(
    field: str,
    value: Any,
    error: type[ConfigError] = ConfigError,
    *,
    lo: float | None = None,
    hi: float | None = None,
    strict_lo: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a float, or ``error`` naming ``field``.

    NaN is never accepted: it passes no range check, so it would slip through them.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise error.at(field, f"must be a number, got {value!r}")
    if finite and not math.isfinite(value):
        raise error.at(field, f"must be a finite number, got {value!r}")
    value = float(value)
    if lo is not None and (value <= lo if strict_lo else value < lo):
        raise error.at(field, f"must be {'>' if strict_lo else '>='} {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise error.at(field, f"must be <= {hi:g}, got {value:g}")
    return value


def check_integer(
    field: str, value: Any, error: type[ConfigError] = ConfigError, *, lo: int | None = None
) -> int:
    """``value`` as an int (``true``/``false`` are not integers), or ``error``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error.at(field, f"must be an integer, got {value!r}")
    if lo is not None and value < lo:
        raise error.at(field, f"must be >= {lo}, got {value}")
    return value


def check_string(
    field: str,
    value: Any,
    error: type[ConfigError] = ConfigError,
    *,
    choices: Iterable[str] | None = None,
) -> str:
    """``value`` as a str, one of ``choices`` if given, or ``error``."""
    if not isinstance(value, str):
        raise error.at(field, f"must be a string, got {value!r}")
    if choices is not None and value not in choices:
        raise error.at(field, f"{value!r} is not one of {', '.join(choices)}")
    return value


def check_strings(
    field: str,
    value: Any,
    error: type[ConfigError] = ConfigError,
    *,
    choices: Iterable[str] | None = None,
) -> tuple[str, ...]:
    """A list of strings as a tuple; with ``choices``, every item one of them."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise error.at(field, f"must be a list of strings, got {value!r}")
    if choices is not None:
        allowed = tuple(choices)
        bad = [v for v in value if v not in allowed]
        if bad:
            verb = "is" if len(bad) == 1 else "are"
            listed = ", ".join(repr(b) for b in bad)
            raise error.at(field, f"{listed} {verb} not one of {', '.join(allowed)}")
    return tuple(value)


def check_mapping(
    field: str,
    value: Any,
    error: type[ConfigError] = ConfigError,
    *,
    one_of: OneOf | None = None,
    base: Mapping[str, str] | None = None,
) -> Mapping[str, str]:
    """A table of str -> str merged key by key over ``base``; each entry checked alone."""
    if not isinstance(value, Mapping):
        raise error.at(field, f"must be a table of key = value, got {value!r}")
    merged = dict(base or {})
    for key, item in value.items():
        if one_of is not None and one_of.keys is not None and key not in one_of.keys:
            known = ", ".join(one_of.keys)
            raise error.at(f"{field}.{key}", f"is not a known key (expected one of {known})")
        choices = one_of.choices if one_of is not None else None
        merged[key] = check_string(f"{field}.{key}", item, error, choices=choices)
    return MappingProxyType(merged)


def check_boolean(field: str, value: Any, error: type[ConfigError] = ConfigError) -> bool:
    """``value`` if it is ``true`` or ``false``, else ``error``."""
    if not isinstance(value, bool):
        raise error.at(field, f"must be true or false, got {value!r}")
    return value


# ------------------------------------------------------------------------ tables


class Table:
    """Typed, checked reads of one table; every error names ``prefix.key``.

    Parameters
    ----------
    obj : mapping
        The parsed table.
    prefix : str
        Its dotted path ("" for the top of a file).
    error : type of ConfigError
        What the checks raise.
    known : iterable of str, optional
        Every key this table may hold. It lets a "missing" error name the keys that
        are not known (a misspelling of the missing one); without it, unread keys
        that look like the missing one are named.
    """

    def __init__(
        self,
        obj: Any,
        prefix: str = "",
        error: type[ConfigError] = ConfigError,
        known: Iterable[str] | None = None,
    ):
        if not isinstance(obj, Mapping):
            raise error.at(prefix, f"must be a table, got {type(obj).__name__}")
        self.obj = obj
        self.prefix = prefix
        self.error = error
        self.known: frozenset[str] | None = None if known is None else frozenset(known)
        self.seen: set[str] = set()

    def name(self, key: str) -> str:
        """Dotted path of ``key`` in this table."""
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, message: str) -> ConfigError:
        """The error for ``key`` (to raise)."""
        return self.error.at(self.name(key), message)

    def has(self, key: str) -> bool:
        return key in self.obj

    def expect(self, known: Iterable[str]) -> None:
        """Narrow the known keys once the table's content says what it is."""
        self.known = frozenset(known)

    def unknown(self, near: str | None = None) -> list[str]:
        """Keys present that are not known (with no known set: unread ones like ``near``)."""
        if self.known is not None:
            return sorted(k for k in self.obj if k not in self.known)
        left = [k for k in self.obj if k not in self.seen]
        return sorted(difflib.get_close_matches(near, left)) if near is not None else left

    def missing(self, key: str) -> ConfigError:
        """The error for a required ``key`` that is absent, naming unknown keys beside it."""
        unknown = self.unknown(near=key)
        if not unknown:
            return self.fail(key, "is missing")
        names = ", ".join(repr(self.name(k)) for k in unknown)
        return self.fail(key, f"is missing, and {names} is not a known key (misspelt?)")

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        """The value as parsed; ``default`` if absent (an error if there is none)."""
        self.seen.add(key)
        if key not in self.obj:
            if default is REQUIRED:
                raise self.missing(key)
            return default
        return self.obj[key]

    def string(
        self, key: str, default: Any = REQUIRED, choices: Iterable[str] | None = None
    ) -> str:
        return check_string(self.name(key), self.raw(key, default), self.error, choices=choices)

    def number(
        self,
        key: str,
        default: Any = REQUIRED,
        lo: float | None = None,
        hi: float | None = None,
        strict_lo: bool = False,
    ) -> float:
        value = self.raw(key, default)
        return check_number(self.name(key), value, self.error, lo=lo, hi=hi, strict_lo=strict_lo)

    def integer(self, key: str, default: Any = REQUIRED, lo: int | None = None) -> int:
        return check_integer(self.name(key), self.raw(key, default), self.error, lo=lo)

    def boolean(self, key: str, default: Any = REQUIRED) -> bool:
        return check_boolean(self.name(key), self.raw(key, default), self.error)

    def table(self, key: str, known: Iterable[str] | None = None) -> Self:
        """The sub-table ``key``, as a reader of the same type."""
        return type(self)(self.raw(key), self.name(key), self.error, known)

    def done(self) -> None:
        """Raise on the first key that was never read: a typo is an error, not a default."""
        unread = sorted(set(self.obj) - self.seen)
        if unread:
            raise self.fail(unread[0], "is not a known field (a typo?)")


# ------------------------------------------------------------------------ dataclasses


def _convert(value: Any, annotation: Any, field: str, error: type[ConfigError],
             finite: bool, current: Any) -> Any:
    """Check ``value`` against a field's type; ``current`` is what a mapping merges over."""
    one_of = None
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        one_of = next((e for e in extras if isinstance(e, OneOf)), None)
    origin = typing.get_origin(annotation)
    choices = one_of.choices if one_of is not None else None
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None):
                try:
                    return _convert(value, option, field, error, finite, current)
                except ConfigError:
                    continue
        raise error.at(field, f"{value!r} is not a valid {annotation}")
    if annotation is float:
        return check_number(field, value, error, finite=finite)
    if annotation is int:
        return check_integer(field, value, error)
    if annotation is bool:
        return check_boolean(field, value, error)
    if annotation is str:
        return check_string(field, value, error, choices=choices)
    if origin is tuple and typing.get_args(annotation)[:1] == (str,):
        return check_strings(field, value, error, choices=choices)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise error.at(field, f"must be a list, got {value!r}")
        (item,) = typing.get_args(annotation)[:1]
        return tuple(
            _convert(v, item, f"{field}[{i}]", error, finite, None) for i, v in enumerate(value)
        )
    if origin is Mapping and typing.get_args(annotation)[1:] in ((float,), (int,)):
        # A table of numbers (per-kind budgets): merged over the current one, key by key.
        if not isinstance(value, Mapping):
            raise error.at(field, f"must be a table of key = number, got {value!r}")
        keys = one_of.keys if one_of is not None else None
        merged = dict(current or {})
        for key, item in value.items():
            if keys is not None and key not in keys:
                raise error.at(f"{field}.{key}", f"is not a known key (expected one of "
                               f"{', '.join(keys)})")
            merged[key] = _convert(item, typing.get_args(annotation)[1], f"{field}.{key}",
                                   error, finite, None)
        return MappingProxyType(merged)
    if origin is Mapping or annotation is Mapping:
        return check_mapping(field, value, error, one_of=one_of, base=current)
    return value


def from_mapping(
    cls: type[T],
    table: Mapping[str, Any],
    where: str = "",
    *,
    base: T | None = None,
    error: type[ConfigError] = ConfigError,
    finite: bool = False,
) -> T:
    """Build the frozen dataclass ``cls`` from a table, naming any key that is wrong.

    Parameters
    ----------
    cls : dataclass type
        Its init fields are the known keys; their annotations the types.
    table : mapping
        The parsed table.
    where : str
        Dotted path of the table, prefixed to every key in an error.
    base : cls, optional
        Values for the keys the table omits (a mapping field merges key by key over
        the base's); without it the dataclass defaults apply.
    error : type of ConfigError
        What is raised.
    finite : bool
        Whether float fields refuse infinities (NaN is always refused).

    Raises
    ------
    ConfigError
        (``error``) for an unknown key (and any missing one beside it), a value of
        the wrong type or choice, or whatever the dataclass's own checks reject.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    reader = Table(table, where, error, known=fields)
    unknown = reader.unknown()
    missing = [] if base is not None else [
        name for name, f in fields.items()
        if name not in table
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if unknown:
        message = f"is not a known key (known: {', '.join(sorted(fields))})"
        if missing:
            message += f"; {', '.join(repr(reader.name(m)) for m in missing)} missing"
        raise reader.fail(unknown[0], message)
    if missing:
        raise reader.missing(missing[0])
    values = {
        name: _convert(value, hints[name], reader.name(name), error, finite,
                       getattr(base, name, None))
        for name, value in table.items()
    }
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)  # type: ignore[type-var]
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise error.at(where or cls.__name__, str(exc)) from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
