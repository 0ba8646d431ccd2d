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
    """

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.code = np.full((0, RING), -1, np.int32)
        self.when = np.full((0, RING), -np.inf)
        self.sensors: list[str] = []
        self._code_of: dict[str, int] = {}

    def sensor_code(self, name: str) -> int:
        """The code of sensor ``name``, registering it if it is new."""
        if name not in self._code_of:
            self._code_of[name] = len(self.sensors)
            self.sensors.append(name)
        return self._code_of[name]

    def restore(self, ids: np.ndarray, code: np.ndarray, when: np.ndarray, sensors: list[str]):
        self.ids, self.code, self.when = ids, code, when
        self.sensors = list(sensors)
        self._code_of = {name: i for i, name in enumerate(self.sensors)}

    def keep(self, ids: np.ndarray) -> None:
        """Hold rows for exactly these tracks (ascending ids); new tracks start empty."""
        if ids.size == self.ids.size and np.array_equal(ids, self.ids):
            return  # the usual step: the same confirmed tracks as last time
        idx = np.minimum(np.searchsorted(self.ids, ids), max(self.ids.size - 1, 0))
        found = self.ids[idx] == ids if self.ids.size else np.zeros(ids.size, bool)
        code = np.full((ids.size, RING), -1, np.int32)
        when = np.full((ids.size, RING), -np.inf)
        code[found] = self.code[idx[found]]
        when[found] = self.when[idx[found]]
        self.ids, self.code, self.when = ids, code, when

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
        idx = np.minimum(np.searchsorted(self.ids, updated), self.ids.size - 1)
        rows = np.unique(idx[self.ids[idx] == updated])
        if rows.size == 0:
            return updated[:0]
        match = self.code[rows] == code
        # The sensor's own slot if it has one, else the stalest slot.
        slot = np.where(match.any(axis=1), match.argmax(axis=1), self.when[rows].argmin(axis=1))
        self.code[rows, slot] = code
        self.when[rows, slot] = t
        return self.ids[rows]

    def since(self, tid: int, t0: float) -> set[str]:
        """Sensors that updated track ``tid`` at or after ``t0``."""
        i = int(np.searchsorted(self.ids, tid))
        if i >= self.ids.size or self.ids[i] != tid:
            return set()
        keep = (self.code[i] >= 0) & (self.when[i] >= t0 - _EPS_T)
        return {self.sensors[c] for c in self.code[i][keep].tolist()}
