"""One function per alert kind: when it opens and when it closes, over arrays of tracks.

The three condition kinds (incursion, predicted incursion, loitering) are decided for
all the tracks of a :class:`ZoneView` at once: each function advances that kind's
timers (the time its open or close condition started holding, NaN while it does not
hold) and returns the view positions whose alert closes and opens this step. The
follow-on kinds close on a hold: exit and lost inside open from a closing incursion
episode, probe from a predicted incursion that cleared. How
:mod:`fusion.alerting.engine` steps them is described there.

Alert kinds and their lifecycle (thresholds are :mod:`fusion.alerting.rules` data):

``incursion``
    Opens when P(inside) >= ``p_open`` has held for ``dwell_open`` seconds; closes when
    P(inside) <= ``p_close`` has held for ``dwell_close`` seconds. The gap between the
    thresholds and the dwell times keep a track sliding along the edge from flapping.
``exit``
    When an incursion closes because the track left, an exit alert opens (and closes
    after ``hold`` seconds, at once by default). It carries the incursion's id in
    ``related_alert_id``, its side (where the track came from) and evidence.
``predicted_incursion``
    A track outside, faster than ``min_speed``, whose probability of entering within
    ``horizon`` seconds (from its state, covariance and IMM mode probabilities,
    :mod:`fusion.alerting.breach`) is >= ``p_open``, for ``dwell_open``; closes when
    it is <= ``p_close`` for ``dwell_close``, or at once when the incursion opens.
``loitering``
    A track within ``band`` metres of the zone (or inside) that has stayed within
    ``radius`` of the point where that dwell began for ``time`` seconds; closes when it
    moves ``radius_close`` from that point or leaves the band, for ``dwell_close``.
``lost_inside``
    A track that is deleted (``deleted_ids``), or that vanishes from the snapshot, while
    its incursion is open: the incursion closes (reason ``track_deleted`` or
    ``track_gone``) and this alert opens at the last known position, closing after
    ``hold`` seconds. Any other open alert of a vanished track closes with that reason.
``probe``
    A predicted incursion that clears (reason ``cleared``: the track turned back or
    stopped short, without entering) after the track came within ``max_distance``
    metres of the edge: the approach-and-turn-back of someone testing the line. It
    opens when the warning closes, with the warning's side and evidence, its id in
    ``related_alert_id`` and the closest approach in ``closest_approach``, and closes
    after ``hold`` seconds (at once by default).
"""

from __future__ import annotations

import functools

import numpy as np

from fusion.alerting.episodes import Episode
from fusion.alerting.rules import (
    SEVERITIES,
    IncursionRule,
    LoiteringRule,
    PredictedIncursionRule,
    ProbeRule,
)
from fusion.alerting.views import ZoneView
from fusion.messages import CLASSES

__all__ = [
    "EPS_T",
    "follow_on_severity",
    "incursion",
    "loitering",
    "predicted_close_reason",
    "predicted_incursion",
    "probe_mask",
    "severity_by_class",
]

# Slack on time comparisons: step times like 0.1 * k do not add up exactly.
EPS_T = 1e-9


def _where(mask: np.ndarray) -> np.ndarray:
    """Positions where a 1-D mask is True (``flatnonzero`` without its wrapping)."""
    return mask.nonzero()[0]


def _since(cond: np.ndarray, prev: np.ndarray, t: float) -> np.ndarray:
    """Time each condition started holding (NaN where it does not hold now)."""
    return np.where(cond, np.where(np.isnan(prev), t, prev), np.nan)


def _held(since: np.ndarray, t: float, dwell: float) -> np.ndarray:
    """Whether a condition has held for ``dwell`` seconds (NaN since -> False)."""
    return (t - since) >= dwell - EPS_T  # comparisons with NaN are False, silently


@functools.lru_cache(maxsize=64)
def _class_table(classes: tuple[str, ...]) -> np.ndarray:
    return np.array([c in classes for c in CLASSES])


def _allowed(cls: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Whether each class code (M,) is one of ``classes``, (M,) bool."""
    return _class_table(tuple(classes))[cls]


def severity_by_class(rule) -> np.ndarray:
    """``SEVERITIES`` index of the rule's severity for each class code, shape (len(CLASSES),)."""
    return np.array([SEVERITIES.index(rule.severity_for(c)) for c in CLASSES], np.int8)


def incursion(
    v: ZoneView, rule: IncursionRule, t: float, is_open: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Incursion: P(inside) >= ``p_open`` for ``dwell_open``; closes at <= ``p_close``.

    Parameters
    ----------
    v : ZoneView
    rule : IncursionRule
    t : float
    is_open : ndarray, shape (M,), bool
        Whether the track's incursion in this zone is open.

    Returns
    -------
    close, open : ndarray of view positions
    """
    ok = _allowed(v.cls, rule.classes)
    v.col["inc_on"] = _since((v.p_inside >= rule.p_open) & ok, v.col["inc_on"], t)
    v.col["inc_off"] = _since((v.p_inside <= rule.p_close) | ~ok, v.col["inc_off"], t)
    close = _where(is_open & _held(v.col["inc_off"], t, rule.dwell_close))
    open_ = _where(~is_open & _held(v.col["inc_on"], t, rule.dwell_open))
    return close, open_


def predicted_incursion(
    v: ZoneView,
    rule: PredictedIncursionRule,
    t: float,
    is_open: np.ndarray,
    inc_open: np.ndarray,
    entered: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted incursion: outside, moving, P(breach within ``horizon``) >= ``p_open``.

    Closes when that probability is <= ``p_close`` for ``dwell_close``, or at once when
    the track entered (``entered``: its incursion is open, or it is inside where the
    incursion rule is off).

    Parameters
    ----------
    v : ZoneView
    rule : PredictedIncursionRule
    t : float
    is_open, inc_open, entered : ndarray, shape (M,), bool
        Predicted incursion open; incursion open; track entered.

    Returns
    -------
    close, open : ndarray of view positions
    """
    ok = _allowed(v.cls, rule.classes)
    likely = v.p_breach >= rule.p_open
    on = (v.dist > 0) & likely & (v.speed >= rule.min_speed) & ok & ~inc_open
    v.col["pred_on"] = _since(on, v.col["pred_on"], t)
    v.col["pred_off"] = _since((v.p_breach <= rule.p_close) | ~ok, v.col["pred_off"], t)
    # Closest approach to the edge while the warning is pending or open: a warning that
    # clears without an entry is a probe if the track came close (see ``probe_mask``).
    running = ~np.isnan(v.col["pred_on"]) | is_open
    v.col["pred_near"] = np.where(running, np.fmin(v.col["pred_near"], v.dist), np.nan)
    closing = is_open & (entered | _held(v.col["pred_off"], t, rule.dwell_close))
    opening = ~is_open & ~entered & _held(v.col["pred_on"], t, rule.dwell_open)
    return _where(closing), _where(opening)


def predicted_close_reason(entered: bool, incursion_enabled: bool) -> str:
    """Why a predicted incursion closes: its incursion opened, the track entered (no
    incursion rule), or its breach probability fell to ``p_close``."""
    if entered:
        return "incursion" if incursion_enabled else "entered"
    return "cleared"


def probe_mask(v: ZoneView, rule: ProbeRule, closed: np.ndarray, reasons: list[str]) -> np.ndarray:
    """Which predicted incursions closing now for ``reasons`` are probes, shape (C,) bool.

    A probe is a warning that cleared (no entry; not a deleted or vanished track) after
    the track came within ``max_distance`` of the edge; the class test is the
    follow-on's (:func:`follow_on_severity`).

    Parameters
    ----------
    v : ZoneView
    rule : ProbeRule
    closed : ndarray, shape (C,), intp
        View positions of the predicted incursions that close in this step.
    reasons : list of str, length C
        Their close reasons.
    """
    if not rule.enabled or not closed.size:
        return np.zeros(closed.size, bool)
    cleared = np.array([r == "cleared" for r in reasons])  # a handful of closes a step
    return cleared & (v.col["pred_near"][closed] <= rule.max_distance)


def loitering(
    v: ZoneView, rule: LoiteringRule, t: float, is_open: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Loitering: within ``band`` of the zone and ``radius`` of one point for ``time``.

    The anchor is where the current dwell began; it restarts whenever the track strays
    beyond ``radius`` and is frozen while the alert is open, which closes once the track
    is ``radius_close`` from it or out of the band for ``dwell_close``.

    Returns
    -------
    close, open : ndarray of view positions
    """
    col, east, north = v.col, v.pos[:, 0], v.pos[:, 1]
    ok = _allowed(v.cls, rule.classes)
    in_band = (v.dist <= rule.band) & ok
    moved_by = np.hypot(east - col["loit_e"], north - col["loit_n"])  # NaN: no anchor
    restart = in_band & ~is_open & (np.isnan(col["loit_t"]) | ~(moved_by <= rule.radius))
    col["loit_e"] = np.where(restart, east, col["loit_e"])
    col["loit_n"] = np.where(restart, north, col["loit_n"])
    col["loit_t"] = np.where(restart, t, col["loit_t"])
    col["loit_t"] = np.where(in_band | is_open, col["loit_t"], np.nan)
    # Distance from the anchor as it is now: 0 where it just moved to the track (the
    # hypot of two zeros), unchanged elsewhere. The zone distance is never NaN, so
    # ~in_band is "out of the band, or a class the rule ignores".
    moved_by = np.where(restart, 0.0, moved_by)
    away = ~in_band | (moved_by > rule.radius_close)
    col["loit_off"] = _since(is_open & away, col["loit_off"], t)
    close = _where(is_open & _held(col["loit_off"], t, rule.dwell_close))
    if close.size:  # a new loiter needs a fresh dwell
        col["loit_t"][close] = np.nan
        col["loit_off"][close] = np.nan
    open_ = _where(~is_open & in_band & _held(col["loit_t"], t, rule.time))
    return close, open_


def follow_on_severity(incursion_episode: Episode, rule) -> str | None:
    """Severity of the exit or lost-inside alert a closing incursion raises, or None.

    Both kinds follow an incursion episode (its side, evidence and last fields) and
    close after their rule's ``hold``; they open only where their rule is enabled for
    the track's class.
    """
    cls_name = incursion_episode.fields["cls"]
    if not rule.enabled or cls_name not in rule.classes:
        return None
    return rule.severity_for(cls_name)
