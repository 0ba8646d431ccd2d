"""The track table: every live track as one row of a structure of arrays.

No Python object per track. Live tracks occupy rows ``0 .. n-1`` of arrays whose
capacity doubles when full; deletion compacts the rows in order, so iteration order
(and therefore every result) is deterministic.

The track index is the *last* axis of every column: the state column ``x`` is
(4, capacity) and the covariance ``P`` is (4, 4, capacity). Each state and covariance
entry is then one contiguous vector over the tracks, which is what the batch-last
Kalman kernels (:func:`fusion.tracking.kalman.predict_batch_last`) loop over. Checkpoints
(:meth:`TrackTable.state_dict`) keep the usual batch-first shapes, (n, 4) and (n, 4, 4).

The IMM mode columns ``x_m`` and ``P_m`` are stored with the mode axis next to the track
axis, (4, J, capacity) and (4, 4, J, capacity): the (..., J, N) layout the IMM kernels
run on, so reading and writing modes needs no reordering copy. Their attributes,
:meth:`TrackTable.put` and checkpoints show the mode axis first, as every other
caller expects: ``table.x_m`` is a (J, 4, n) view and a checkpoint's ``x_m`` (n, J, 4).
"""

from __future__ import annotations

import numpy as np

from fusion.messages import CLASSES

MODES = 2  # IMM modes per track: quiet and manoeuvring
TENTATIVE = np.int8(0)
CONFIRMED = np.int8(1)

# name -> (per-track shape, dtype) of each column; stored as (*shape, capacity), except
# that the mode columns (MODE_FIRST) keep their mode axis, first here, next to the last.
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
    "score": ((), np.float64),  # log-likelihood ratio target / clutter (existence)
    # IMM modes (fusion.tracking.motion): state, covariance and probability of each
    "x_m": ((MODES, 4), np.float64),
    "P_m": ((MODES, 4, 4), np.float64),
    "mu": ((MODES,), np.float64),
    "class_evidence": ((len(CLASSES),), np.float32),
}
MODE_FIRST = frozenset({"x_m", "P_m"})


def _stored_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-track shape of column ``name`` as stored: a mode axis moved to the end."""
    return (*shape[1:], shape[0]) if name in MODE_FIRST else shape


def _shown(name: str, a: np.ndarray) -> np.ndarray:
    """View of stored column memory ``a`` (..., n) with the mode axis first, as shown."""
    if name not in MODE_FIRST:
        return a
    n = a.ndim  # np.moveaxis(a, -2, 0), without its 2 us of argument checking
    return a.transpose((n - 2, *range(n - 2), n - 1))


def _to_stored(name: str, values: np.ndarray, ndim: int) -> np.ndarray:
    """Values shaped as column ``name`` is shown (mode first), viewed as it is stored.

    ``values`` may omit leading axes (broadcasting); they are put back first so the
    mode axis is found. A view of stored memory comes back as that memory.
    """
    if name not in MODE_FIRST or values.ndim == 0:
        return values
    if values.ndim < ndim:
        values = values.reshape((1,) * (ndim - values.ndim) + values.shape)
    return values.transpose((*range(1, ndim - 1), 0, ndim - 1))  # np.moveaxis(values, 0, -2)


class TrackTable:
    """Structure of arrays holding the live tracks.

    Attributes
    ----------
    n : int
        Number of live tracks; rows ``[0, n)`` (the last axis) of every column are
        valid.
    next_id : int
        The id the next new track gets.
    """

    def __init__(self, capacity: int = 1024):
        self._n = 0
        self.next_id = 1
        self._columns: dict[str, np.ndarray] = {
            name: np.zeros((*_stored_shape(name, shape), max(capacity, 1)), dtype=dtype)
            for name, (shape, dtype) in COLUMNS.items()
        }

    @property
    def n(self) -> int:
        return self._n

    @n.setter
    def n(self, value: int) -> None:
        self._n = value
        self._forget_views()

    @property
    def capacity(self) -> int:
        return int(self._columns["id"].shape[-1])

    def __getattr__(self, name: str) -> np.ndarray:
        # Views of the live rows: table.x is (4, n), table.P is (4, 4, n), table.t is (n,),
        # table.x_m (J, 4, n). A batch reads the columns some fifty times: the view is
        # kept as an instance attribute, found before __getattr__, until the rows or the
        # column memory change (_forget_views).
        columns = self.__dict__.get("_columns")
        if columns is None or name not in columns:
            raise AttributeError(name)
        view = _shown(name, columns[name][..., : self._n])
        self.__dict__[name] = view
        return view

    def _forget_views(self) -> None:
        for name in COLUMNS:
            self.__dict__.pop(name, None)

    def __getstate__(self) -> dict:
        # Without the cached views: a copy's views must see the copy's columns.
        return {k: v for k, v in self.__dict__.items() if k not in COLUMNS}

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        """Bytes held by all columns at the current capacity."""
        return sum(column.nbytes for column in self._columns.values())

    def _reserve(self, extra: int) -> None:
        needed = self.n + extra
        if needed <= self.capacity:
            return
        capacity = self.capacity
        while capacity < needed:
            capacity *= 2
        for name, column in self._columns.items():
            grown = np.zeros((*column.shape[:-1], capacity), dtype=column.dtype)
            grown[..., : self.n] = column[..., : self.n]
            self._columns[name] = grown
        self._forget_views()

    def add(
        self, x: np.ndarray, P: np.ndarray, t: float, score: float | np.ndarray = 0.0
    ) -> np.ndarray:
        """Append tentative tracks and return their new ids.

        Parameters
        ----------
        x : ndarray, shape (4, K)
        P : ndarray, shape (4, 4, K)
            Batch-last, like the table.
        t : float
            Time of the states (the detections' measurement time).
        score : float or ndarray, shape (K,)
            Initial track score (see ``fusion.tracking.existence``).

        Returns
        -------
        ids : ndarray, shape (K,), int64
        """
        k = x.shape[-1]
        self._reserve(k)
        rows = slice(self.n, self.n + k)
        ids = np.arange(self.next_id, self.next_id + k, dtype=np.int64)
        c = self._columns
        c["id"][rows] = ids
        c["x"][:, rows] = x
        c["P"][:, :, rows] = P
        c["t"][rows] = c["t_hit"][rows] = c["t_born"][rows] = t
        c["status"][rows] = TENTATIVE
        c["history"][rows] = 1  # the initiating detection is a hit
        c["scans"][rows] = 1
        c["misses_in_row"][rows] = 0
        c["score"][rows] = score
        c["x_m"][..., rows] = x[:, None]  # stored (4, J, capacity)
        c["P_m"][..., rows] = P[:, :, None]
        c["mu"][:, rows] = 1.0 / MODES
        c["class_evidence"][:, rows] = 0.0
        self.n += k
        self.next_id += k
        return ids

    def take(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Copy of the live rows ``rows`` (K,) of column ``name``, shaped as the attribute.

        The copy stays batch-last in memory, (..., K) as stored (``np.take``; fancy
        indexing on the last axis would lay it out batch-first and slow the kernels
        several times over), and is taken from the whole column: ``np.take`` first
        copies an operand that is not contiguous, and the live rows of a column are not
        when the table has spare capacity.
        """
        return _shown(name, self._columns[name].take(rows, axis=-1))  # np.take: +0.6 us

    def put(self, name: str, rows: slice | np.ndarray, values: np.ndarray) -> None:
        """``column[..., rows] = values`` for the live rows ``rows`` of column ``name``.

        Parameters
        ----------
        name : str
        rows : slice or ndarray, shape (K,), intp
        values : ndarray, shape (*shape, K), or broadcastable to it
            Laid out as the attribute shows the column (mode axis first for ``x_m``,
            ``P_m``); a mode-first view of (..., J, K) memory is written without a copy.
        """
        self.put_rows(rows, {name: values})

    def put_rows(self, rows: slice | np.ndarray, values: dict[str, np.ndarray]) -> None:
        """:meth:`put` for several columns (name -> values) at the same rows.

        For an index array each column gets one assignment through flat indices into the
        whole column, (*shape, K) of them: numpy's fancy assignment on the last axis
        walks the leading entries one by one, and took 10x longer for ``P_m`` at 1e3
        rows. Every column has the same capacity, so the indices of the widest column
        serve the others too (their first entries), and are computed once.
        """
        if isinstance(rows, slice):
            for name, v in values.items():
                column = self._columns[name]
                column[..., : self.n][..., rows] = _to_stored(name, np.asarray(v), column.ndim)
            return
        capacity = self.capacity
        widest = max(self._columns[name].size for name in values) // capacity
        flat = np.arange(0, widest * capacity, capacity)[:, None] + rows  # (widest, K)
        for name, v in values.items():
            column = self._columns[name]
            index = flat[: column.size // capacity].reshape(*column.shape[:-1], rows.size)
            column.reshape(-1)[index] = _to_stored(name, np.asarray(v), column.ndim)

    def remove(self, rows: np.ndarray) -> None:
        """Delete the given rows, keeping the remaining tracks in order.

        Only the rows from the first deleted one on move. Most deletions are young
        tentative tracks started on clutter, which sit at the end of the table, so
        this usually touches a small tail instead of every column in full.
        """
        if rows.size == 0:
            return
        first = int(rows.min())
        keep = np.ones(self.n - first, dtype=bool)
        keep[rows - first] = False
        moved = np.flatnonzero(keep) + first
        kept = first + moved.size
        for column in self._columns.values():
            column[..., first:kept] = column[..., moved]
        self.n = kept

    def sort_by_id(self) -> None:
        """Restore ascending id order after some rows took back an older id.

        Consumers search the ids of snapshots and batch results (``searchsorted``), so
        the table keeps rows in id order. Only the rows from the first one out of order
        on move; reacquired tracks are rare, so this seldom runs at all.
        """
        ids = self._columns["id"][: self.n]
        down = (ids[1:] < ids[:-1]).nonzero()[0]
        if down.size == 0:
            return
        d = int(down[0])
        if down.size == 1 and (d + 2 == self.n or ids[d + 2] > ids[d]):
            # Only row d + 1 is out of place (the usual case: one reacquisition). It
            # moves back to its id's place and the rows between shift up by one, by
            # slice copies (memcpy speed, twice as fast as the gather below).
            first, last = int(np.searchsorted(ids[: d + 1], ids[d + 1], side="right")), d + 2
            for column in self._columns.values():
                moved = column[..., last - 1].copy()
                column[..., first + 1 : last] = column[..., first : last - 1]
                column[..., first] = moved
            return
        first = int(np.searchsorted(ids[: d + 1], ids[d + 1 :].min()))
        order = np.argsort(ids[first:], kind="stable")
        # Rows past the last one that moves stay put: a reacquired track moves from the
        # end of the table to its id's place, and only the rows in between shift.
        last = first + int(np.flatnonzero(order != np.arange(order.size))[-1]) + 1
        for column in self._columns.values():
            # np.take keeps the copy batch-last (fancy indexing would not, and is
            # slower), and takes from the whole column, which is contiguous: a slice
            # of it would be copied first.
            column[..., first:last] = column.take(order[: last - first] + first, axis=-1)

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """Copy of the live rows (batch-first, e.g. ``P`` (n, 4, 4)) and the id counter."""
        state: dict[str, np.ndarray | int] = {
            name: np.moveaxis(_shown(name, column[..., : self.n]), -1, 0).copy()
            for name, column in self._columns.items()
        }
        state["next_id"] = self.next_id
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray | int]) -> TrackTable:
        """Rebuild a table from :meth:`state_dict`'s output.

        A column missing from ``state`` (a checkpoint written before it existed) is
        left at zero; the tracker fills in what zero cannot mean.
        """
        n = int(np.asarray(state["id"]).shape[0])
        table = cls(capacity=max(1024, n))
        for name in COLUMNS:
            if name in state:
                shown = _shown(name, table._columns[name][..., :n])
                shown[...] = np.moveaxis(np.asarray(state[name]), 0, -1)
        table.n = n
        table.next_id = int(state["next_id"])  # type: ignore[arg-type]
        return table
