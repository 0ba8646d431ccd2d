"""The two sides of a buffer zone: its long axis, the chains that face each side, names.

Sides
-----
A buffer zone separates two forces, so every point is on one of its two sides. The
zone's long axis comes from its minimum-area bounding rectangle (or from the
``axis_bearing`` property, degrees clockwise from north); each part's outer ring is cut
at its two extreme points along that axis into two chains, one on each side of the
axis. A point is on the side whose chain is nearer, which keeps working for a strip
that curves. The positive side is the one the axis normal points to, oriented
northwards for a strip running roughly east-west (sides named ``"north"`` and
``"south"``) and eastwards for one running roughly north-south (``"east"`` and
``"west"``). The ``side_names`` property renames them: a list ``[positive, negative]``
or a mapping from the compass name to a force name, e.g.
``{"north": "blue", "south": "red"}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely

from fusion.alerting import polygon
from fusion.alerting.geojson import ZoneError

__all__ = ["long_axis", "nearer_side", "orient", "resolve_names", "side_chains"]


def long_axis(geom: Any, axis_bearing: Any, name: str) -> np.ndarray:
    """Unit vector (east, north) of the zone's long axis, shape (2,).

    From ``axis_bearing`` (degrees clockwise from north) if given, else the long edge
    of the minimum-area bounding rectangle.
    """
    if axis_bearing is not None:
        try:
            bearing = math.radians(float(axis_bearing))
        except (TypeError, ValueError):
            raise ZoneError(
                f"zone {name!r}: axis_bearing must be a number, got {axis_bearing!r}"
            ) from None
        if not math.isfinite(bearing):
            raise ZoneError(f"zone {name!r}: axis_bearing must be finite")
        return np.array([math.sin(bearing), math.cos(bearing)])
    corners = np.asarray(shapely.oriented_envelope(geom).exterior.coords)
    e1, e2 = corners[1] - corners[0], corners[2] - corners[1]
    edge = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    return edge / np.hypot(*edge)


def orient(axis: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """The normal that points to the positive side, and the compass names of the sides."""
    normal = np.array([-axis[1], axis[0]])
    if abs(normal[1]) >= abs(normal[0]):
        return (normal if normal[1] > 0 else -normal), ("north", "south")
    return (normal if normal[0] > 0 else -normal), ("east", "west")


def resolve_names(side_names: Any, compass: tuple[str, str], name: str) -> tuple[str, str]:
    """Names of the (positive, negative) sides from the ``side_names`` property."""
    if side_names is None:
        return compass
    if isinstance(side_names, Mapping):
        if set(side_names) != set(compass) or not all(
            isinstance(v, str) and v for v in side_names.values()
        ):
            raise ZoneError(
                f"zone {name!r}: side_names mapping must map exactly {list(compass)} "
                f"(this zone's compass sides) to non-empty names, got {dict(side_names)!r}"
            )
        return (side_names[compass[0]], side_names[compass[1]])
    if (
        isinstance(side_names, list | tuple)
        and len(side_names) == 2
        and all(isinstance(v, str) and v for v in side_names)
        and side_names[0] != side_names[1]
    ):
        return (side_names[0], side_names[1])
    raise ZoneError(
        f"zone {name!r}: side_names must be two distinct names "
        f"[{compass[0]}-side, {compass[1]}-side] or a mapping, got {side_names!r}"
    )


def side_chains(geom: Any, axis: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges ``(E+, 4)`` and ``(E-, 4)`` of the outer-ring chains facing each side."""
    pos_chains, neg_chains = [], []
    parts = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
    for part in parts:
        ring = np.asarray(part.exterior.coords)[:-1]
        a, b = polygon.split_ring(ring, axis)
        # The chain further along the normal is the positive side's.
        if a.mean(axis=0) @ normal >= b.mean(axis=0) @ normal:
            pos_chains.append(a)
            neg_chains.append(b)
        else:
            pos_chains.append(b)
            neg_chains.append(a)
    return (
        np.vstack([polygon.chain_edges(c) for c in pos_chains]),
        np.vstack([polygon.chain_edges(c) for c in neg_chains]),
    )


def nearer_side(
    points: np.ndarray,
    d_pos: np.ndarray,
    d_neg: np.ndarray,
    centre: np.ndarray,
    normal: np.ndarray,
) -> np.ndarray:
    """``1`` where the positive chain is nearer, ``-1`` where the negative one is, (M,) int8.

    Ties (a point on a cut point, or on the axis beyond an end) fall back to the side
    of the axis through the centroid.

    Parameters
    ----------
    points : ndarray, shape (M, 2)
    d_pos, d_neg : ndarray, shape (M,)
        Distances to the positive and the negative chain.
    centre, normal : ndarray, shape (2,)
        The zone's centroid and the unit normal to the positive side.
    """
    # 1 - 0, 0 - 1, or 0 on a tie: two comparisons and a subtraction, as int8.
    out = (d_pos < d_neg).view(np.int8) - (d_neg < d_pos).view(np.int8)
    tie = (out == 0).nonzero()[0]
    if tie.size:  # rare: the axis test only then
        ahead = (points - centre) @ normal >= 0
        out[tie] = np.where(ahead[tie], 1, -1)
    return out
