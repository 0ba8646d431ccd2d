"""Tracker parameters (the ``[tracker]`` table of a TOML file) and what follows from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fusion.config import ConfigError, OneOf, from_mapping, load_toml

# Detection model of a sensor that does not say its own (no ``pd`` / ``clutter`` on the
# wire): per kind, (probability of detection, clutter density per m^2). Deliberately
# pessimistic: a Pd guessed low makes misses weigh less, so tracks are not deleted on
# the strength of a guess; a clutter density guessed high makes two false alarms less
# convincing (a guess too low confirms clutter pairs, which in a zone raise incursion
# alerts; one too high costs a real target a scan).
KINDS = ("radar", "drone", "satellite", "ugs")


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker parameters; load from the ``[tracker]`` table of a TOML file.

    Attributes
    ----------
    accel_std : float
        Standard deviation of the white acceleration noise, m/s^2. Covers walkers,
        turning vehicles and drones with one model.
    gate_probability : float
        Probability that the true detection of a track falls inside its gate.
    imm : bool
        Track with an interacting multiple model (``fusion.tracking.imm``): a quiet
        constant-velocity mode (``quiet_accel_std``) and a manoeuvring one
        (``accel_std``). False: one Kalman filter with ``accel_std``.
    quiet_accel_std : float
        White acceleration noise of the quiet mode, m/s^2.
    quiet_sojourn, manoeuvre_sojourn : float
        Mean seconds a target stays in each mode.
    init_velocity_std : float
        Prior standard deviation of each velocity component of a new track, m/s; one
        detection says nothing about velocity, so it must cover the fastest target.
    lifecycle : {"score", "m_of_n"}
        ``"score"`` (default): each track carries a log-likelihood-ratio score (target
        against clutter, see ``fusion.tracking.existence``), confirmed and deleted by a
        sequential probability ratio test. ``"m_of_n"``: hit counting, kept to compare
        with trackers that confirm that way.
    false_track_probability, true_track_loss_probability : float
        The SPRT's error probabilities (``lifecycle = "score"``): a candidate track on
        clutter is confirmed with probability at most the first, a real target's
        candidate is dropped with probability at most the second. They set the
        confirmation and tentative deletion thresholds, and the score a confirmed
        track may lose from its ceiling before it is deleted.
    false_track_rate : float
        At most this many false tracks confirmed per batch: with many unassigned
        detections in a batch, each candidate is held to a stricter ``alpha`` (see
        ``existence.confirm_threshold``).
    new_target_density : float
        Expected new targets per square metre per scan: the prior odds of a fresh
        detection being a target rather than clutter are this over the sensor's
        clutter density.
    radar_pd, drone_pd, satellite_pd, ugs_pd, unknown_pd : float
        Detection probability assumed for a sensor of that kind whose batches do not
        carry ``pd``.
    radar_clutter, drone_clutter, satellite_clutter, ugs_clutter, unknown_clutter : float
        Clutter density (false detections per m^2 per batch) assumed when a batch does
        not carry ``clutter``.
    confirm_m, confirm_n : int
        ``lifecycle = "m_of_n"``: confirm after ``confirm_m`` hits in the last
        ``confirm_n`` in-coverage scans, delete once it can no longer get there.
    max_misses : int
        ``lifecycle = "m_of_n"``: consecutive in-coverage misses after which a
        confirmed track is deleted...
    min_miss_time : float
        ...provided its last detection is also at least this many seconds old (both
        lifecycles: with ``"score"``, a confirmed track whose score fell below the
        threshold goes once its last detection is this old).
    max_coast_time : float
        Seconds without any detection after which a confirmed track is deleted. Out of
        every sensor's coverage nothing counts as a miss, so this and
        ``max_position_std`` decide how long a track is held through a gap.
    tentative_max_coast_time : float
        The same for tentative tracks.
    max_position_std : float
        A track whose larger position standard deviation, predicted to the latest
        time, exceeds this (metres) is deleted: it no longer says where the target is.
    reacquire_window : float
        Seconds a deleted confirmed track is remembered; a new track confirmed where it
        predicts (within ``reacquire_probability``'s gate) takes its id back.
    reacquire_probability : float
        Gate probability of that track-to-track test.
    supersede_max_gap : float
        A newly confirmed track whose path, traced back, was where a confirmed track
        (silent since before the new one's birth, by at most this many seconds) had
        its last detection takes that track's id, and the old track goes without being
        reported deleted (``fusion.tracking.continuity.supersede``): a target that
        turned sharply keeps its id, and its alerts, while its old track still coasts.
        0 turns this off.
    supersede_probability : float
        Gate probability of that 2-dof position test.
    initiation_exclusion_probability : float
        No track starts on a detection that lies inside this (wider) gate of a
        confirmed track that took no detection in the batch: such a detection is far
        more likely a noisy return of that target, and a second track on it would be a
        duplicate. A track that took one excludes only its ``gate_probability`` gate.
    max_oosm_lag : float
        Batches older than a track's state by more than this, seconds, are not fused
        into it (neither update nor miss).
    max_new_per_batch, max_tentative : int
        At most this many tracks started from one batch, and tentative tracks alive at
        once: a batch of clutter or a forged flood cannot grow the table without bound
        (the detections beyond are counted as ``initiations_refused``).
    initial_capacity : int
        Rows reserved in the track table at start.
    """

    accel_std: float = 2.0
    gate_probability: float = 0.99
    init_velocity_std: float = 15.0
    imm: bool = True
    quiet_accel_std: float = 0.2
    quiet_sojourn: float = 120.0
    manoeuvre_sojourn: float = 10.0
    lifecycle: Annotated[str, OneOf(("score", "m_of_n"))] = "score"
    false_track_probability: float = 0.005
    true_track_loss_probability: float = 0.01
    false_track_rate: float = 0.05
    new_target_density: float = 1e-6
    radar_pd: float = 0.85
    drone_pd: float = 0.6
    satellite_pd: float = 0.6
    ugs_pd: float = 0.2
    unknown_pd: float = 0.5
    radar_clutter: float = 1e-7
    drone_clutter: float = 2e-7
    satellite_clutter: float = 1e-7
    ugs_clutter: float = 1e-7
    unknown_clutter: float = 1e-7
    confirm_m: int = 4
    confirm_n: int = 6
    max_misses: int = 5
    min_miss_time: float = 2.0
    max_coast_time: float = 30.0
    tentative_max_coast_time: float = 10.0
    max_position_std: float = 1000.0
    reacquire_window: float = 60.0
    reacquire_probability: float = 0.999
    supersede_max_gap: float = 5.0
    supersede_probability: float = 0.999
    max_oosm_lag: float = 300.0
    initiation_exclusion_probability: float = 0.99999
    max_new_per_batch: int = 2_000
    max_tentative: int = 50_000
    initial_capacity: int = 1024

    def __post_init__(self) -> None:
        positive = (
            "accel_std", "init_velocity_std", "max_coast_time", "max_position_std",
            "tentative_max_coast_time", "new_target_density", "false_track_rate", "quiet_accel_std",
            "quiet_sojourn", "manoeuvre_sojourn",
        )
        if self.min_miss_time < 0 or self.reacquire_window < 0 or self.supersede_max_gap < 0:
            raise ConfigError(
                "tracker.min_miss_time, reacquire_window and supersede_max_gap must be >= 0"
            )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"tracker.{name} must be positive, got {getattr(self, name)}")
        for name in (
            "gate_probability", "initiation_exclusion_probability", "reacquire_probability",
            "supersede_probability",
            "false_track_probability", "true_track_loss_probability",
        ):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"tracker.{name} must lie in (0, 1), got {getattr(self, name)}")
        for kind in (*KINDS, "unknown"):
            pd, clutter = getattr(self, f"{kind}_pd"), getattr(self, f"{kind}_clutter")
            if not 0.0 < pd <= 1.0 or not clutter > 0:
                raise ConfigError(
                    f"tracker.{kind}_pd must lie in (0, 1] and {kind}_clutter be > 0, "
                    f"got {pd}, {clutter}"
                )
        if not 1 <= self.confirm_m <= self.confirm_n <= 32:
            raise ConfigError(
                "tracker.confirm_m/confirm_n need 1 <= M <= N <= 32, "
                f"got {self.confirm_m}/{self.confirm_n}"
            )
        if self.max_new_per_batch < 0 or self.max_tentative < 0:
            raise ConfigError("tracker.max_new_per_batch and max_tentative must be >= 0")
        if self.max_misses < 1 or self.initial_capacity < 1 or self.max_oosm_lag < 0:
            raise ConfigError(
                "tracker.max_misses and initial_capacity must be >= 1, max_oosm_lag >= 0"
            )

    def detection_model(self, kind: str) -> tuple[float, float]:
        """Default ``(pd, clutter density)`` for a sensor kind (``unknown_*`` otherwise)."""
        kind = kind if kind in KINDS else "unknown"
        return getattr(self, f"{kind}_pd"), getattr(self, f"{kind}_clutter")

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "tracker") -> TrackerConfig:
        """Load from the ``[tracker]`` table of a TOML file (missing keys keep defaults)."""
        return from_mapping(cls, load_toml(path).get(table, {}), table)
