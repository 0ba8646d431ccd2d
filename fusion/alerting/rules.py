"""Alert rules as data: which zone raises which alert, when, and at what severity.

The rules of engagement around a buffer zone are contested and change, so they live in a
TOML file, not in code. The file has one table per zone (or ``"*"`` for every zone) and
alert kind; a zone's table overrides ``"*"`` field by field, which overrides the
built-in defaults below (so a file need only say what differs)::

    [zones."*".incursion]
    p_open = 0.6
    severity = { person = "medium", vehicle = "high" }

    [zones."zone-a".loitering]
    enabled = false

Fields common to every kind (:class:`_KindRule`): ``enabled``, ``classes`` (target
classes that can raise it), ``severity`` (per class, merged class by class),
``dwell_open`` and ``dwell_close`` (seconds the open or close condition must hold),
``update_interval`` (seconds between ``update`` events of an open alert, 0 = none).
Kind-specific fields are documented on each rule class and in
``fusion/data/rules.toml``. Any unknown key, wrong type or out-of-range value raises
:class:`RulesError`, whose message and ``field`` attribute name the offending field.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from fusion.config import ConfigError, OneOf, Table, from_mapping
from fusion.messages import CLASSES

__all__ = [
    "KINDS",
    "SEVERITIES",
    "ExitRule",
    "IncursionRule",
    "LoiteringRule",
    "LostInsideRule",
    "PredictedIncursionRule",
    "ProbeRule",
    "RuleSet",
    "RulesError",
    "ZoneRules",
    "load_rules",
    "severity_rank",
]

SEVERITIES = ("info", "low", "medium", "high", "critical")
KINDS = ("incursion", "predicted_incursion", "loitering", "exit", "lost_inside", "probe")


def severity_rank(level: str) -> int:
    """Order of a severity level: ``info`` 0 < ``low`` < ``medium`` < ``high`` < ``critical`` 4."""
    return SEVERITIES.index(level)


class RulesError(ConfigError):
    """A rules file that cannot be used.

    Parameters
    ----------
    field : str
        Dotted path of the offending field, e.g. ``zones."zone-a".incursion.p_open``.
    message : str
        What is wrong with it.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", field)
        self.message = message

    @classmethod
    def at(cls, field: str, message: str) -> RulesError:
        return cls(field, message)


# Field types that say which values a rules file may give (read by from_mapping).
ClassNames = Annotated[tuple[str, ...], OneOf(CLASSES)]
SeverityTable = Annotated[Mapping[str, str], OneOf(SEVERITIES, keys=CLASSES)]


def _default_severity() -> Mapping[str, str]:
    return MappingProxyType(
        {"unknown": "medium", "person": "medium", "vehicle": "high", "drone": "high"}
    )


@dataclass(frozen=True)
class _KindRule:
    """Fields every alert kind has.

    Attributes
    ----------
    enabled : bool
        Whether this kind of alert is raised at all.
    classes : tuple of str
        Target classes (names from ``fusion.messages.CLASSES``) that can raise it.
    severity : mapping str -> str
        Severity level per target class.
    dwell_open : float
        Seconds the open condition must hold before the alert opens.
    dwell_close : float
        Seconds the close condition must hold before the alert closes.
    update_interval : float
        Seconds between ``update`` events while open; 0 means no periodic updates
        (an update is still sent when the severity changes).
    """

    enabled: bool = True
    classes: ClassNames = CLASSES
    severity: SeverityTable = field(default_factory=_default_severity)
    dwell_open: float = 0.0
    dwell_close: float = 0.0
    update_interval: float = 10.0

    def severity_for(self, cls_name: str) -> str:
        """Severity for a target class (``"medium"`` if the table lacks the class)."""
        return self.severity.get(cls_name, "medium")

    def _check(self, where: str) -> None:
        for name in ("dwell_open", "dwell_close", "update_interval"):
            if getattr(self, name) < 0:
                raise RulesError(f"{where}.{name}", "must be >= 0")


@dataclass(frozen=True)
class IncursionRule(_KindRule):
    """A confirmed track inside the zone.

    Attributes
    ----------
    p_open : float
        P(inside) at or above which the alert may open.
    p_close : float
        P(inside) at or below which it may close; below ``p_open`` (hysteresis).
    """

    p_open: float = 0.6
    p_close: float = 0.3
    dwell_open: float = 2.0
    dwell_close: float = 3.0

    def _check(self, where: str) -> None:
        super()._check(where)
        _check_hysteresis(self, where)


def _check_hysteresis(rule: Any, where: str) -> None:
    """``0 <= p_close < p_open <= 1``, naming the field at fault."""
    if not 0.0 < rule.p_open <= 1.0:
        raise RulesError(f"{where}.p_open", f"must lie in (0, 1], got {rule.p_open}")
    if not 0.0 <= rule.p_close < rule.p_open:
        raise RulesError(
            f"{where}.p_close", f"must lie in [0, p_open={rule.p_open}), got {rule.p_close}"
        )


@dataclass(frozen=True)
class PredictedIncursionRule(_KindRule):
    """A track outside that will likely enter the zone within the horizon.

    P(breach within ``horizon``) comes from the track's state, its covariance and
    (where the tracker gives them) its IMM mode probabilities
    (:mod:`fusion.alerting.breach`), not from the straight-line path alone.

    Attributes
    ----------
    horizon : float
        Look-ahead of the breach probability, seconds.
    p_open : float
        P(breach within ``horizon``) at or above which the alert may open.
    p_close : float
        At or below which it may close (below ``p_open``, hysteresis); it also
        closes at once when the incursion opens.
    horizon_close : float
        Look-ahead of the straight-line ``time_to_breach`` the alert reports
        (>= ``horizon``).
    min_speed : float
        Slower tracks (m/s) never open one: a still target's velocity is noise.
    accel_std : float
        White acceleration noise of a target going about its way (the quiet mode),
        m/s^2: how far the prediction is trusted over the horizon.
    manoeuvre_accel_std : float
        The same for a manoeuvring target (turning, stopping), m/s^2.
    manoeuvre_prob : float
        Probability of the manoeuvring mode where the tracker gives no mode
        probabilities.
    """

    horizon: float = 45.0
    p_open: float = 0.6
    p_close: float = 0.3
    horizon_close: float = 90.0
    min_speed: float = 0.5
    accel_std: float = 0.05
    manoeuvre_accel_std: float = 0.5
    manoeuvre_prob: float = 0.1
    dwell_open: float = 2.0
    dwell_close: float = 3.0
    severity: SeverityTable = field(
        default_factory=lambda: MappingProxyType(
            {"unknown": "low", "person": "low", "vehicle": "medium", "drone": "medium"}
        )
    )

    def _check(self, where: str) -> None:
        super()._check(where)
        if not self.horizon > 0:
            raise RulesError(f"{where}.horizon", f"must be > 0, got {self.horizon}")
        if not self.horizon_close >= self.horizon:
            raise RulesError(
                f"{where}.horizon_close",
                f"must be >= horizon={self.horizon}, got {self.horizon_close}",
            )
        _check_hysteresis(self, where)
        for name in ("min_speed", "accel_std", "manoeuvre_accel_std"):
            if getattr(self, name) < 0:
                raise RulesError(f"{where}.{name}", "must be >= 0")
        if not 0.0 <= self.manoeuvre_prob <= 1.0:
            raise RulesError(f"{where}.manoeuvre_prob", "must lie in [0, 1]")


@dataclass(frozen=True)
class LoiteringRule(_KindRule):
    """A track staying in one place inside or near the zone.

    Opens when the track has stayed within ``radius`` of the point where its dwell
    began, and within ``band`` of the zone, for ``time`` seconds; closes when it
    moves more than ``radius_close`` from that point or further than ``band`` from
    the zone (for ``dwell_close`` seconds).

    Attributes
    ----------
    radius : float
        Metres.
    radius_close : float
        Metres, >= ``radius`` (hysteresis).
    time : float
        Seconds.
    band : float
        Metres outside the zone that still count as "near"; 0 = inside only.
    """

    radius: float = 50.0
    radius_close: float = 100.0
    time: float = 120.0
    band: float = 200.0
    dwell_close: float = 5.0
    update_interval: float = 30.0
    severity: SeverityTable = field(
        default_factory=lambda: MappingProxyType(
            {"unknown": "low", "person": "medium", "vehicle": "medium", "drone": "high"}
        )
    )

    def _check(self, where: str) -> None:
        super()._check(where)
        if not self.radius > 0:
            raise RulesError(f"{where}.radius", f"must be > 0, got {self.radius}")
        if not self.radius_close >= self.radius:
            raise RulesError(
                f"{where}.radius_close", f"must be >= radius={self.radius}, got {self.radius_close}"
            )
        if not self.time > 0:
            raise RulesError(f"{where}.time", f"must be > 0, got {self.time}")
        if self.band < 0:
            raise RulesError(f"{where}.band", "must be >= 0")


def _same_severity(level: str) -> Mapping[str, str]:
    """A severity table with ``level`` for every class."""
    return MappingProxyType(dict.fromkeys(CLASSES, level))


@dataclass(frozen=True)
class _FollowOnRule(_KindRule):
    """A kind that follows another alert's close and closes on a hold.

    Attributes
    ----------
    hold : float
        Seconds the alert stays open before it closes by itself; 0 sends its ``open``
        and ``close`` in the same step.
    """

    hold: float = 0.0
    update_interval: float = 0.0
    severity: SeverityTable = field(default_factory=lambda: _same_severity("low"))

    def _check(self, where: str) -> None:
        super()._check(where)
        if self.hold < 0:
            raise RulesError(f"{where}.hold", "must be >= 0")


@dataclass(frozen=True)
class ExitRule(_FollowOnRule):
    """A track whose incursion was open leaves the zone (the incursion closes too)."""


@dataclass(frozen=True)
class LostInsideRule(_FollowOnRule):
    """A track deleted (or gone from the picture) while its incursion was open; ``hold``
    keeps it on the board for late subscribers."""

    hold: float = 120.0
    severity: SeverityTable = field(default_factory=lambda: _same_severity("high"))


@dataclass(frozen=True)
class ProbeRule(_FollowOnRule):
    """A track that headed for the zone and turned back: its predicted incursion
    cleared without an entry, after it came within ``max_distance`` of the edge.

    Attributes
    ----------
    max_distance : float
        Metres: the closest the track came to the zone while its predicted incursion
        was pending or open must be at most this; a warning that cleared far out says
        little about intent.
    """

    max_distance: float = 500.0

    def _check(self, where: str) -> None:
        super()._check(where)
        if self.max_distance < 0:
            raise RulesError(f"{where}.max_distance", "must be >= 0")


_RULE_CLASSES: dict[str, type[_KindRule]] = {
    "incursion": IncursionRule,
    "predicted_incursion": PredictedIncursionRule,
    "loitering": LoiteringRule,
    "exit": ExitRule,
    "lost_inside": LostInsideRule,
    "probe": ProbeRule,
}


@dataclass(frozen=True)
class ZoneRules:
    """The rules of every alert kind for one zone."""

    incursion: IncursionRule = field(default_factory=IncursionRule)
    predicted_incursion: PredictedIncursionRule = field(default_factory=PredictedIncursionRule)
    loitering: LoiteringRule = field(default_factory=LoiteringRule)
    exit: ExitRule = field(default_factory=ExitRule)
    lost_inside: LostInsideRule = field(default_factory=LostInsideRule)
    probe: ProbeRule = field(default_factory=ProbeRule)

    def __getitem__(self, kind: str) -> _KindRule:
        if kind not in KINDS:
            raise KeyError(kind)
        return getattr(self, kind)


@dataclass(frozen=True)
class RuleSet:
    """Rules for every zone: a default (``"*"``) and per-zone overrides.

    Attributes
    ----------
    default : ZoneRules
        Rules of any zone not named in ``zones``.
    zones : mapping str -> ZoneRules
        Fully merged rules of each zone named in the file.
    """

    default: ZoneRules = field(default_factory=ZoneRules)
    zones: Mapping[str, ZoneRules] = field(default_factory=lambda: MappingProxyType({}))

    def for_zone(self, name: str) -> ZoneRules:
        """Rules for zone ``name`` (the ``"*"`` rules if it has none of its own)."""
        return self.zones.get(name, self.default)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleSet:
        """Build from parsed TOML; see the module docstring for the layout."""
        if not isinstance(data, Mapping):
            raise RulesError("<root>", "must be a table")
        top = Table(data, "", RulesError, known=("version", "zones"))
        for key in top.unknown():
            raise top.fail(key, "unknown top-level key (expected 'version' and 'zones')")
        version = top.raw("version", 1)
        if version != 1 or isinstance(version, bool):
            raise RulesError(
                "version", f"rules format version {version!r} not supported (expected 1)"
            )
        zones = top.raw("zones", {})
        if not isinstance(zones, Mapping):
            raise RulesError("zones", "must be a table of zone tables")
        for name, table in zones.items():
            if not isinstance(table, Mapping):
                raise RulesError(f'zones."{name}"', "must be a table of alert-kind tables")
        base = _merge_zone(ZoneRules(), zones.get("*", {}), 'zones."*"')
        per_zone = {
            name: _merge_zone(base, table, f'zones."{name}"')
            for name, table in zones.items()
            if name != "*"
        }
        return cls(base, MappingProxyType(per_zone))

    @classmethod
    def from_toml(cls, text: str) -> RuleSet:
        """Parse TOML text; syntax errors become :class:`RulesError` too."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulesError("<toml>", f"not valid TOML ({exc})") from None
        return cls.from_dict(data)


def _merge_zone(base: ZoneRules, table: Mapping[str, Any], where: str) -> ZoneRules:
    changes = {}
    for kind, sub in table.items():
        if kind not in KINDS:
            raise RulesError(
                f"{where}.{kind}", f"unknown alert kind (expected one of {list(KINDS)})"
            )
        if not isinstance(sub, Mapping):
            raise RulesError(f"{where}.{kind}", "must be a table")
        changes[kind] = _merge_kind(getattr(base, kind), sub, f"{where}.{kind}")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _merge_kind(base: _KindRule, table: Mapping[str, Any], where: str) -> _KindRule:
    # Every number in a rule is seconds, metres, m/s or a probability: never infinite.
    rule = from_mapping(type(base), table, where, base=base, error=RulesError, finite=True)
    rule._check(where)
    return rule


def load_rules(source: str | PathLike[str] | None = None) -> RuleSet:
    """Load a rules file; ``None`` loads the shipped ``fusion/data/rules.toml``.

    Raises
    ------
    RulesError
        Naming the field (or the file, if it cannot be read).
    """
    if source is None:
        text = resources.files("fusion").joinpath("data/rules.toml").read_text(encoding="utf-8")
        return RuleSet.from_toml(text)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(str(path), f"cannot read rules file ({exc})") from None
    try:
        return RuleSet.from_toml(text)
    except RulesError as exc:
        raise RulesError(exc.field, f"{exc.message} (in {path})") from None
