"""The one validation path: dataclass tables and key-by-key tables, errors naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated

import pytest

from fusion.config import ConfigError, OneOf, Table, from_mapping


@dataclass(frozen=True)
class Radio:
    channel: int
    power: float = 1.0
    name: str = "r"
    mode: Annotated[str, OneOf(("voice", "data"))] = "voice"
    bands: Annotated[tuple[str, ...], OneOf(("vhf", "uhf"))] = ("vhf",)
    keys: Annotated[Mapping[str, str], OneOf(("on", "off"), keys=("a", "b"))] = field(
        default_factory=lambda: MappingProxyType({"a": "on", "b": "on"})
    )
    enabled: bool = True

    def __post_init__(self):
        if self.power < 0:
            raise ValueError("power must be >= 0")


class LocalError(ConfigError):
    """A caller's own error type with its own format, as rules and scenarios have."""

    def __init__(self, field: str, message: str):
        super().__init__(f"<{field}> {message}", field)

    @classmethod
    def at(cls, field: str, message: str) -> LocalError:
        return cls(field, message)


def test_defaults_fill_what_the_table_omits():
    radio = from_mapping(Radio, {"channel": 3, "power": 2}, "radio")
    assert radio == Radio(channel=3, power=2.0) and isinstance(radio.power, float)


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ({"channel": 1, "powr": 2.0}, "radio.powr", "not a known key"),
        ({"channel": "one"}, "radio.channel", "integer"),
        ({"channel": True}, "radio.channel", "integer"),
        ({"channel": 1, "power": float("nan")}, "radio.power", "number"),
        ({"channel": 1, "mode": "morse"}, "radio.mode", "voice, data"),
        ({"channel": 1, "bands": ["vhf", "hf"]}, "radio.bands", "'hf' is not one of"),
        ({"channel": 1, "keys": {"c": "on"}}, "radio.keys.c", "not a known key"),
        ({"channel": 1, "keys": {"a": "dim"}}, "radio.keys.a", "on, off"),
        ({"channel": 1, "enabled": 1}, "radio.enabled", "true or false"),
        ({}, "radio.channel", "is missing"),
    ],
)
def test_errors_name_the_key_and_its_table(table, field, words):
    with pytest.raises(ConfigError) as info:
        from_mapping(Radio, table, "radio")
    assert info.value.field == field
    assert str(info.value).startswith(field) and words in str(info.value)


def test_a_misspelt_required_key_is_named_beside_the_missing_one():
    with pytest.raises(ConfigError) as info:
        from_mapping(Radio, {"chanel": 1}, "radio")
    message = str(info.value)
    assert info.value.field == "radio.chanel"
    assert "not a known key" in message and "'radio.channel' missing" in message


def test_the_dataclass_range_checks_are_reported_with_the_table():
    with pytest.raises(ConfigError, match="radio: power must be >= 0"):
        from_mapping(Radio, {"channel": 1, "power": -1.0}, "radio")


def test_infinities_only_where_allowed():
    assert from_mapping(Radio, {"channel": 1, "power": float("inf")}).power == float("inf")
    with pytest.raises(ConfigError, match="finite"):
        from_mapping(Radio, {"channel": 1, "power": float("inf")}, finite=True)


def test_a_base_instance_is_overridden_key_by_key_and_mappings_merge():
    base = Radio(channel=5, power=3.0, keys=MappingProxyType({"a": "off", "b": "off"}))
    radio = from_mapping(Radio, {"power": 4, "keys": {"b": "on"}}, "radio", base=base)
    assert radio.channel == 5 and radio.power == 4.0
    assert dict(radio.keys) == {"a": "off", "b": "on"}
    assert dict(base.keys) == {"a": "off", "b": "off"}  # the base is untouched


def test_a_caller_keeps_its_own_error_type_and_format():
    with pytest.raises(LocalError) as info:
        from_mapping(Radio, {"channel": 1.5}, "radio", error=LocalError)
    assert str(info.value).startswith("<radio.channel>")


def test_table_reads_typed_values_and_names_what_was_never_read():
    t = Table({"rate": 2, "name": "x", "rtae": 3}, "sensors[0]")
    assert t.number("rate", lo=0.0) == 2.0 and t.string("name") == "x"
    assert t.integer("count", 4) == 4
    with pytest.raises(ConfigError) as info:
        t.done()
    assert info.value.field == "sensors[0].rtae"


@pytest.mark.parametrize("known", [None, ("duration", "seed")])
def test_table_missing_key_names_the_misspelling_beside_it(known):
    t = Table({"duraton": 60.0, "seed": 1}, "", known=known)
    assert t.integer("seed") == 1
    with pytest.raises(ConfigError) as info:
        t.number("duration")
    assert info.value.field == "duration"
    assert "is missing" in str(info.value) and "'duraton' is not a known key" in str(info.value)


def test_table_missing_key_with_nothing_misspelt_says_only_missing():
    t = Table({"seed": 1}, "top", known=("duration", "seed"))
    with pytest.raises(ConfigError, match=r"^top\.duration: is missing$"):
        t.number("duration")


def test_table_refuses_what_is_not_a_table():
    with pytest.raises(ConfigError, match="zones\\[0\\]: must be a table"):
        Table([1, 2], "zones[0]")
