"""The confirmed-track picture the alert engine steps on: validated, copied, indexed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fusion.messages import CLASSES

__all__ = ["COLUMNS", "Snapshot"]

# Columns of Snapshot.table.
COLUMNS = ("east", "north", "v_east", "v_north", "speed", "cls", "conf")


@dataclass
class Snapshot:
    """Confirmed tracks at one time (structure of arrays), with an index by track id.

    Attributes
    ----------
    ids : ndarray, shape (N,), int64
        Unique track ids, in the tracker's order.
    x : ndarray, shape (N, 4)
        east, north (m), v_east, v_north (m/s).
    P_pos : ndarray, shape (N, 2, 2)
        Position covariances, m^2.
    cls : ndarray, shape (N,), uint8
    conf : ndarray, shape (N,)
    P_vel : ndarray, shape (N, 2, 4), optional
        The velocity rows of the state covariance (velocity-position, velocity); zero
        when the tracker gave position covariances only. Breach probabilities use it.
    mu : ndarray, shape (J, N), optional
        IMM mode probabilities (quiet, manoeuvring), when the tracker gives them.
    P_rows : ndarray, shape (N, 16), optional
        Each state covariance as one row (row-major 4 x 4), so that the breach
        probability gathers every block it reads in one call; built from ``P_pos`` and
        ``P_vel`` (the rest 0) where not given.
    order : ndarray, shape (N,), intp
        ``ids[order]`` is ascending.
    ids_ascending : bool
        ``ids`` is strictly ascending (the tracker's order): ``order`` is the identity,
        ``sorted_ids`` is ``ids`` and the ids are unique.
    """

    ids: np.ndarray
    x: np.ndarray
    P_pos: np.ndarray
    cls: np.ndarray
    conf: np.ndarray
    P_vel: np.ndarray | None = None
    mu: np.ndarray | None = None
    P_rows: np.ndarray | None = field(default=None, repr=False)
    order: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.P_vel is None:
            self.P_vel = np.zeros((self.ids.size, 2, 4))
        if self.P_rows is None:  # a checkpoint's or a position-only snapshot
            full = np.zeros((self.ids.size, 4, 4))
            full[:, :2, :2] = self.P_pos
            full[:, 2:, :] = self.P_vel
            self.P_rows = full.reshape(-1, 16)
        self.ids_ascending = bool(self.ids.size < 2 or (self.ids[1:] > self.ids[:-1]).all())
        if self.ids_ascending:
            # The tracker lists its tracks by id: nothing to sort, and no duplicates.
            self.order = np.arange(self.ids.size)
            self.sorted_ids = self.ids
        else:
            self.order = np.argsort(self.ids, kind="stable")
            self.sorted_ids = self.ids[self.order]
        # One row per track of everything a zone view gathers, so that picking the
        # tracks a zone evaluates is one gather: COLUMNS.
        # x and conf become views of it (a copy: the tracker reuses its buffers).
        self.table = np.empty((self.ids.size, len(COLUMNS)))
        self.table[:, :4] = self.x
        self.table[:, 5] = self.cls
        self.table[:, 6] = self.conf
        self.x, self.conf = self.table[:, :4], self.table[:, 6]
        self.speed = self.table[:, 4]
        np.hypot(self.x[:, 2], self.x[:, 3], out=self.speed)
        # sqrt(trace P) bounds the position standard deviation in any direction.
        sigma = self.P_pos[:, 0, 0] + self.P_pos[:, 1, 1]
        self.sigma = np.sqrt(np.maximum(sigma, 0.0, out=sigma), out=sigma)

    @classmethod
    def empty(cls) -> Snapshot:
        return cls(
            np.zeros(0, np.int64),
            np.zeros((0, 4)),
            np.zeros((0, 2, 2)),
            np.zeros(0, np.uint8),
            np.zeros(0),
        )

    @classmethod
    def checked(cls, ids, x, P, cls_, conf, mu=None) -> Snapshot:
        """Validate the tracker's arrays and copy them (the tracker reuses its buffers).

        Raises
        ------
        ValueError
            On malformed shapes, duplicate ids, class codes out of range, NaN or inf.
        """
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (ids.size == 0 or ids.dtype.kind in "iu"):  # signed, unsigned
            raise ValueError(f"ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64)
        n = ids.size
        if x is None or P is None or cls_ is None or conf is None:
            raise ValueError("a snapshot needs ids, x, P, cls and conf")
        x = np.asarray(x, dtype=float)
        P = np.asarray(P, dtype=float)
        cls_ = np.asarray(cls_)
        conf = np.asarray(conf, dtype=float)
        if x.shape != (n, 4):
            raise ValueError(f"x must have shape ({n}, 4), got {x.shape}")
        if P.shape not in ((n, 4, 4), (n, 2, 2)):
            raise ValueError(f"P must have shape ({n}, 4, 4) or ({n}, 2, 2), got {P.shape}")
        if cls_.shape != (n,) or conf.shape != (n,):
            raise ValueError(
                f"cls and conf must have shape ({n},), got {cls_.shape} and {conf.shape}"
            )
        # An unsigned code (the tracker's uint8) cannot be negative: one reduction.
        signed = cls_.dtype.kind != "u"
        if n and ((signed and int(cls_.min()) < 0) or int(cls_.max()) >= len(CLASSES)):
            raise ValueError(f"cls holds indices outside 0..{len(CLASSES) - 1}")
        # One copy of the whole covariance (a memcpy) costs a fraction of copying its
        # position and velocity blocks apart (two strided gathers); the snapshot keeps
        # views of the blocks it reads.
        P = P.copy()
        Pp = P[:, :2, :2]
        P_vel = P[:, 2:, :] if P.shape[1] == 4 else None
        # A finite sum means finite entries: one sum over the whole contiguous arrays
        # usually settles it. Otherwise (or on overflow) the blocks the engine reads are
        # checked one by one, so an entry it never reads is not an error.
        if not np.isfinite(x.sum() + P.sum()):
            if not np.isfinite(x.sum() + Pp.sum()) and not (
                np.isfinite(x).all() and np.isfinite(Pp).all()
            ):
                raise ValueError("x or P holds NaN or infinity")
            if P_vel is not None and not np.isfinite(P_vel.sum()):
                raise ValueError("P holds NaN or infinity")
        if mu is not None:
            mu = np.array(mu, dtype=float)
            if mu.ndim != 2 or mu.shape[1] != n or not np.isfinite(mu).all():
                raise ValueError(f"mu must be a finite (J, {n}) array, got {mu.shape}")
        P_rows = P.reshape(n, 16) if P_vel is not None else None
        snap = cls(ids, x, Pp, cls_.astype(np.uint8), conf, P_vel, mu, P_rows)
        # Strictly ascending ids (the usual case) are unique already.
        if not snap.ids_ascending and (snap.sorted_ids[1:] == snap.sorted_ids[:-1]).any():
            raise ValueError("track ids in a snapshot must be unique")
        return snap

    def __len__(self) -> int:
        return self.ids.size

    def without(self, gone: np.ndarray) -> Snapshot:
        """This snapshot less the tracks in ``gone`` (ids)."""
        rows, found = self.rows_of(gone)
        if not found.any():
            return self  # the usual case: the tracker deleted tentative tracks only
        keep = np.ones(self.ids.size, bool)
        keep[rows[found]] = False
        return Snapshot(
            self.ids[keep], self.x[keep], self.P_pos[keep], self.cls[keep], self.conf[keep],
            None if self.P_vel is None else self.P_vel[keep],
            None if self.mu is None else self.mu[:, keep], self.P_rows[keep],  # type: ignore[index]
        )  # fmt: skip

    def rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Snapshot rows of ``ids``: (row (K,), found (K,) bool).

        Where an id is not found its row is some valid row (callers mask with ``found``).
        """
        if self.ids.size == 0:
            return np.zeros(ids.shape, np.intp), np.zeros(ids.shape, bool)
        if self.ids_ascending:  # the position among the sorted ids is the row
            k = np.minimum(self.ids.searchsorted(ids), self.ids.size - 1)
            return k, self.ids[k] == ids
        k = np.minimum(self.sorted_ids.searchsorted(ids), self.ids.size - 1)
        found = self.sorted_ids[k] == ids
        return np.where(found, self.order[k], 0), found

    def as_state(self) -> dict[str, np.ndarray]:
        return {
            "ids": self.ids,
            "x": self.x,
            "P_pos": self.P_pos,
            "cls": self.cls,
            "conf": self.conf,
            **({} if self.P_vel is None else {"P_vel": self.P_vel}),
            **({} if self.mu is None else {"mu": self.mu}),
        }
