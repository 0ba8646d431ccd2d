"""Which sensors updated each track, and when: the evidence an alert carries.

Every track keeps a small ring of (sensor, last time it updated the track) slots, so
that an alert opening after its dwell can name the sensors that saw the whole dwell.
The ring is a structure of arrays over tracks (rows sorted by track id) and every
operation is vectorised over the tracks of one batch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RING", "EvidenceRing"]

# Distinct sensors remembered per track (with the time each last updated it).
RING = 16
# Slack on time comparisons: step times like 0.1 * k do not add up exactly.
_EPS_T = 1e-9


class EvidenceRing:
    """Per-track (sensor code, time) slots; sensor names are coded in first-seen order.

    Attributes
    ----------
    ids : ndarray, shape (N,), int64
        Track ids, ascending.
    code : ndarray, shape (N, RING), int32
        Sensor code per slot, -1 for an empty slot.
    when : ndarray, shape (N, RING)
        Time the slot's sensor last updated the track (-inf when empty).
    sensors : list of str
        Sensor name per code.

    Notes
    -----
    ``slot[i, c]`` is the slot of sensor ``c`` in track ``i``'s ring (-1 if it has
    none): the index that makes the usual update -- a sensor that already has a slot
    -- a gather and a scatter instead of a search of every updated track's ring.
    """

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.code = np.full((0, RING), -1, np.int32)
        self.when = np.full((0, RING), -np.inf)
        self.slot = np.full((0, 0), -1, np.int8)
        self.sensors: list[str] = []
        self._code_of: dict[str, int] = {}

    def sensor_code(self, name: str) -> int:
        """The code of sensor ``name``, registering it if it is new."""
        if name not in self._code_of:
            self._code_of[name] = len(self.sensors)
            self.sensors.append(name)
            if self.slot.shape[1] < len(self.sensors):
                grown = np.full((self.ids.size, 2 * len(self.sensors)), -1, np.int8)
                grown[:, : self.slot.shape[1]] = self.slot
                self.slot = grown
        return self._code_of[name]

    def restore(self, ids: np.ndarray, code: np.ndarray, when: np.ndarray, sensors: list[str]):
        """Take a checkpoint's rows (``code``/``when`` as :attr:`code`/:attr:`when`)."""
        self.ids, self.code, self.when = ids, code, when
        self.sensors = list(sensors)
        self._code_of = {name: i for i, name in enumerate(self.sensors)}
        self.slot = np.full((ids.size, max(len(self.sensors), 1)), -1, np.int8)
        row, ring_slot = np.nonzero(code >= 0)
        self.slot[row, code[row, ring_slot]] = ring_slot

    def keep(self, ids: np.ndarray) -> None:
        """Hold rows for exactly these tracks (ascending ids); new tracks start empty."""
        if ids.size == self.ids.size and (ids == self.ids).all():
            return  # the usual step: the same confirmed tracks as last time
        idx = np.minimum(self.ids.searchsorted(ids), max(self.ids.size - 1, 0))
        found = self.ids[idx] == ids if self.ids.size else np.zeros(ids.size, bool)
        code = np.full((ids.size, RING), -1, np.int32)
        when = np.full((ids.size, RING), -np.inf)
        slot = np.full((ids.size, self.slot.shape[1]), -1, np.int8)
        code[found] = self.code[idx[found]]
        when[found] = self.when[idx[found]]
        slot[found] = self.slot[idx[found]]
        self.ids, self.code, self.when, self.slot = ids, code, when, slot

    def record(self, t: float, updated: np.ndarray, code: int) -> np.ndarray:
        """Note that sensor ``code`` updated these tracks at ``t``.

        Parameters
        ----------
        t : float
        updated : ndarray, shape (U,), int64
        code : int

        Returns
        -------
        ndarray, shape (U',), int64
            The updated tracks that have a row (tracks not yet seen are skipped).
        """
        if self.ids.size == 0 or updated.size == 0:
            return updated[:0]
        idx = np.minimum(self.ids.searchsorted(updated), self.ids.size - 1)
        rows = idx[self.ids[idx] == updated]
        if rows.size > 1 and not (rows[1:] > rows[:-1]).all():
            rows = np.unique(rows)  # the tracker lists each track once, in id order
        if rows.size == 0:
            return updated[:0]
        # The sensor's own slot if it has one, else the stalest slot (int8 indexes as
        # well as intp: no conversion; the column first, then the rows: one gather).
        slot = self.slot[:, code][rows]
        new = slot < 0
        if new.any():
            fresh = rows[new]
            stalest = self.when[fresh].argmin(axis=1)
            evicted = self.code[fresh, stalest]
            has = evicted >= 0
            self.slot[fresh[has], evicted[has]] = -1
            self.slot[fresh, code] = stalest
            self.code[fresh, stalest] = code
            slot[new] = stalest
        self.when[rows, slot] = t
        return self.ids[rows]

    def since(self, tid: int, t0: float) -> set[str]:
        """Sensors that updated track ``tid`` at or after ``t0``."""
        i = int(self.ids.searchsorted(tid))
        if i >= self.ids.size or self.ids[i] != tid:
            return set()
        keep = (self.code[i] >= 0) & (self.when[i] >= t0 - _EPS_T)
        return {self.sensors[c] for c in self.code[i][keep].tolist()}
