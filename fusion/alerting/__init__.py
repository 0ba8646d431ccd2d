"""Zones, the alert rules (data, not code) and the alert engine that applies them to tracks."""

from fusion.alerting.engine import AlertEngine
from fusion.alerting.rules import RuleSet, load_rules
from fusion.alerting.zones import Zone, ZoneSet

__all__ = ["AlertEngine", "RuleSet", "Zone", "ZoneSet", "load_rules"]
