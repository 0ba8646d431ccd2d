"""The track table: every live track as one row of a structure of arrays.

No Python object per track. Live tracks occupy rows ``0 .. n-1`` of arrays whose
capacity doubles when full; deletion compacts the rows in order, so iteration order
(and therefore every result) is deterministic.
"""

from __future__ import annotations

import numpy as np

from fusion.messages import CLASSES

TENTATIVE = np.int8(0)
CONFIRMED = np.int8(1)

# name -> (trailing shape, dtype) of each per-track column
COLUMNS: dict[str, tuple[tuple[int, ...], type]] = {
    "id": ((), np.int64),  # never reused
    "x": ((4,), np.float64),  # east, north, v_east, v_north
    "P": ((4, 4), np.float64),
    "t": ((), np.float64),  # time the state refers to
    "t_hit": ((), np.float64),  # time of the last detection
    "t_born": ((), np.float64),
    "status": ((), np.int8),
    "history": ((), np.uint32),  # bit i set = hit i scans ago, in-coverage scans only
    "scans": ((), np.int32),  # in-coverage scans since birth
    "misses_in_row": ((), np.int32),
    "class_evidence": ((len(CLASSES),), np.float32),
}


class TrackTable:
    """Structure of arrays holding the live tracks.

    Attributes
    ----------
    n : int
        Number of live tracks; rows ``[0, n)`` of every column are valid.
    next_id : int
        The id the next new track gets.
    """

    def __init__(self, capacity: int = 1024):
        self.n = 0
        self.next_id = 1
        self._columns: dict[str, np.ndarray] = {
            name: np.zeros((max(capacity, 1), *shape), dtype=dtype)
            for name, (shape, dtype) in COLUMNS.items()
        }

    @property
    def capacity(self) -> int:
        return int(self._columns["id"].shape[0])

    def __getattr__(self, name: str) -> np.ndarray:
        # Views of the live rows: table.x is (n, 4), table.P is (n, 4, 4), ...
        columns = self.__dict__.get("_columns")
        if columns is None or name not in columns:
            raise AttributeError(name)
        return columns[name][: self.n]

    def __len__(self) -> int:
        return self.n

    def _reserve(self, extra: int) -> None:
        needed = self.n + extra
        if needed <= self.capacity:
            return
        capacity = self.capacity
        while capacity < needed:
            capacity *= 2
        for name, column in self._columns.items():
            grown = np.zeros((capacity, *column.shape[1:]), dtype=column.dtype)
            grown[: self.n] = column[: self.n]
            self._columns[name] = grown

    def add(self, x: np.ndarray, P: np.ndarray, t: float) -> np.ndarray:
        """Append tentative tracks and return their new ids.

        Parameters
        ----------
        x : ndarray, shape (K, 4)
        P : ndarray, shape (K, 4, 4)
        t : float
            Time of the states (the detections' measurement time).

        Returns
        -------
        ids : ndarray, shape (K,), int64
        """
        k = x.shape[0]
        self._reserve(k)
        rows = slice(self.n, self.n + k)
        ids = np.arange(self.next_id, self.next_id + k, dtype=np.int64)
        c = self._columns
        c["id"][rows] = ids
        c["x"][rows] = x
        c["P"][rows] = P
        c["t"][rows] = c["t_hit"][rows] = c["t_born"][rows] = t
        c["status"][rows] = TENTATIVE
        c["history"][rows] = 1  # the initiating detection is a hit
        c["scans"][rows] = 1
        c["misses_in_row"][rows] = 0
        c["class_evidence"][rows] = 0.0
        self.n += k
        self.next_id += k
        return ids

    def remove(self, rows: np.ndarray) -> None:
        """Delete the given rows, keeping the remaining tracks in order."""
        if rows.size == 0:
            return
        keep = np.ones(self.n, dtype=bool)
        keep[rows] = False
        kept = int(keep.sum())
        for column in self._columns.values():
            column[:kept] = column[: self.n][keep]
        self.n = kept

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """Copy of the live rows and the id counter, for checkpoints."""
        state: dict[str, np.ndarray | int] = {
            name: column[: self.n].copy() for name, column in self._columns.items()
        }
        state["next_id"] = self.next_id
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray | int]) -> TrackTable:
        n = int(np.asarray(state["id"]).shape[0])
        table = cls(capacity=max(1024, n))
        for name in COLUMNS:
            table._columns[name][:n] = state[name]
        table.n = n
        table.next_id = int(state["next_id"])  # type: ignore[arg-type]
        return table
