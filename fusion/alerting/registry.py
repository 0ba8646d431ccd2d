"""The open alerts: by id in opening order, column-wise per zone and kind, and numbered.

Every episode gets the id ``"<zone>:<kind>:<track id>:<n>"``, ``n`` counting that
track's episodes of that kind in that zone from 0, so the ids depend only on the input
sequence. The tracker may give a lost track's id back to the track that continues it,
so the counts of a deleted track are kept (the newest ``RETIRED_KEPT`` of them): an id
that comes back goes on counting, and no alert id is ever issued twice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from fusion.alerting.episodes import Episode, Fields, OpenIndex

__all__ = ["CONDITION_KINDS", "OpenAlerts"]

# Deleted tracks whose episode counts are kept, in case their id comes back.
RETIRED_KEPT = 65_536
# Kinds whose alerts follow a condition on the live track; the others close on a hold.
CONDITION_KINDS = ("incursion", "predicted_incursion", "loitering")


class OpenAlerts:
    """The open episodes of every zone, and how many each track has had.

    Attributes
    ----------
    by_id : dict of str to Episode
        Every open episode, in opening order.
    index : dict of (zone, kind) to OpenIndex
        The open condition-kind episodes, column-wise.
    holds : dict of str to Episode
        The open exit and lost-inside episodes (they close on a hold).
    counts : dict of int to dict of (zone, kind) to int
        Episodes so far per track.
    """

    def __init__(self, zone_names: list[str]):
        self.by_id: dict[str, Episode] = {}
        self.index = {(z, k): OpenIndex() for z in zone_names for k in CONDITION_KINDS}
        self.holds: dict[str, Episode] = {}
        self.counts: dict[int, dict[tuple[str, str], int]] = {}
        self.retired: OrderedDict[int, None] = OrderedDict()

    def open(
        self,
        t: float,
        zone: str,
        kind: str,
        tid: int,
        severity: str,
        side: str | None,
        evidence: set[str],
        fields: Fields,
        related: str | None = None,
        hold: float | None = None,
    ) -> Episode:
        """A new episode, numbered and registered (its open event is the caller's)."""
        self.retired.pop(tid, None)  # alive again, if it was deleted
        per = self.counts.setdefault(tid, {})
        n = per.get((zone, kind), 0)
        per[(zone, kind)] = n + 1
        ep = Episode(
            alert_id=f"{zone}:{kind}:{tid}:{n}", kind=kind, zone=zone, track_id=tid,
            opened_at=t, severity=severity, side=side, evidence=set(evidence), fields=fields,
            related=related, close_at=None if hold is None else t + hold, last_emit=t,
        )  # fmt: skip
        self.register(ep)
        return ep

    def register(self, ep: Episode, new: bool = True) -> None:
        self.by_id[ep.alert_id] = ep
        if ep.kind in CONDITION_KINDS:
            self.index[(ep.zone, ep.kind)].add(ep, new)
        else:
            self.holds[ep.alert_id] = ep

    def emitted(self, ep: Episode, event: str) -> None:
        """``ep`` just sent ``event``: a close retires it, others refresh its index row."""
        if event == "close":
            del self.by_id[ep.alert_id]
            if ep.kind in CONDITION_KINDS:
                self.index[(ep.zone, ep.kind)].remove(ep)
            else:
                self.holds.pop(ep.alert_id, None)
        elif ep.kind in CONDITION_KINDS:
            index = self.index[(ep.zone, ep.kind)]
            index.emitted(index.row(ep.track_id))

    def on_tracks(self, tids: np.ndarray) -> list[Episode]:
        """Open condition-kind episodes of these tracks (ascending ids), in opening order."""
        hit = {
            index.episodes[k].alert_id
            for index in self.index.values()
            if len(index)
            for k in np.flatnonzero(_member(index.tids, tids)).tolist()
        }
        if not hit:
            return []
        return [ep for aid, ep in self.by_id.items() if aid in hit]

    def forget(self, tids: np.ndarray) -> None:
        """Retire the episode counts of deleted tracks; drop the oldest beyond the bound."""
        for tid in tids.tolist():
            if tid in self.counts:
                self.retired[tid] = None
                self.retired.move_to_end(tid)
        while len(self.retired) > RETIRED_KEPT:
            self.counts.pop(self.retired.popitem(last=False)[0], None)

    def state(self) -> tuple[list[dict[str, Any]], list[list[Any]]]:
        """Checkpoint form: the open episodes and the counts ``[track, zone, kind, n]``."""
        counts = [[tid, z, k, n] for tid, per in self.counts.items() for (z, k), n in per.items()]
        return [ep.to_state() for ep in self.by_id.values()], counts

    def restore(self, open_states: list[dict[str, Any]], counts: list[list[Any]]) -> None:
        for ep_state in open_states:
            self.register(Episode.from_state(ep_state), new=False)
        for tid, zone, kind, n in counts:
            self.counts.setdefault(int(tid), {})[(zone, kind)] = int(n)
        # Which of them belong to live tracks is not known here: all start retired
        # (an alert of a live track takes its counts back), so the bound holds.
        self.retired = OrderedDict((tid, None) for tid in self.counts)


def _member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` are in ``sorted_ids`` (ascending), shape (len(ids),) bool."""
    if sorted_ids.size == 0:
        return np.zeros(ids.size, bool)
    k = np.minimum(sorted_ids.searchsorted(ids), sorted_ids.size - 1)
    return sorted_ids[k] == ids
