"""CurveZMQ for the service: who may publish detections, who may read alerts.

Several parties feed this system and some of them would like to fool it, so when keys
are configured every socket of the service is a CURVE *server*: traffic is encrypted
and every peer proves it holds a client secret key. pyzmq's
:class:`zmq.auth.thread.ThreadAuthenticator` answers the ZAP requests libzmq makes for
each new connection, and two allow-lists decide:

- the detection SUB socket (ZAP domain :data:`DOMAIN_DETECTIONS`) admits the keys
  registered for some sensor id;
- the PUB (alerts, tracks, status) and the snapshot ROUTER (ZAP domain
  :data:`DOMAIN_SUBSCRIBERS`) admit the subscriber keys.

Being let in is not enough to speak for a sensor: the authenticator stamps each
message with the ``User-Id`` property (the z85 public key, pyzmq's default
``curve_user_id``), and :class:`SensorKeyPolicy` accepts a batch only if that key is
registered for the batch's sensor id; otherwise the service rejects it as
``spoofed_sensor``.

Keys are pyzmq certificate files: ``<name>.key`` (public) and ``<name>.key_secret``
(public and secret), made by ``bufferzone keys``. Without keys the service runs in
the clear and says so loudly at start (for local demos only).

Configuration, the ``[security]`` table::

    [security]
    server_key = "keys/server.key_secret"   # the service's key pair
    keys_dir = "keys"                       # where <name>.key public keys live
    subscribers = ["ops-room", "un-observers"]
    [security.sensors]                      # sensor id (fnmatch pattern) -> key names
    "radar-*" = ["gateway-north"]
    "uav-3" = ["uav-3"]

Relative paths are relative to the TOML file.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from fusion.config import ConfigError, load_toml

log = logging.getLogger(__name__)

DOMAIN_DETECTIONS = "bufferzone.detections"
DOMAIN_SUBSCRIBERS = "bufferzone.subscribers"
# Sensor ids seen by an allowed key are cached; bounded so a flood of invented ids
# from an allowed key cannot grow it without limit.
_POLICY_CACHE = 4096


@dataclass(frozen=True)
class SecurityConfig:
    """The ``[security]`` table; empty ``server_key`` means no authentication.

    Attributes
    ----------
    server_key : str
        The service's secret key file (``<name>.key_secret``).
    keys_dir : str
        Directory of public key files; key names below are ``<keys_dir>/<name>.key``.
        A name with a ``/`` or ending in ``.key`` is taken as a path instead.
    subscribers : tuple of str
        Keys that may subscribe to alerts, tracks and status and ask for snapshots.
    sensors : mapping of str to tuple of str
        Sensor id pattern (``fnmatch``, e.g. ``"radar-*"``) -> keys that may publish
        batches for it. Every key named here may connect to the detection socket.
    base_dir : str
        Where relative paths start (the TOML file's directory).
    """

    server_key: str = ""
    keys_dir: str = ""
    subscribers: tuple[str, ...] = ()
    sensors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    base_dir: str = "."

    @property
    def enabled(self) -> bool:
        return bool(self.server_key)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], base_dir: str | Path = ".") -> SecurityConfig:
        known = {"server_key", "keys_dir", "subscribers", "sensors"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"unknown field security.{unknown[0]} (known: {', '.join(sorted(known))})"
            )
        for name in ("server_key", "keys_dir"):
            if not isinstance(table.get(name, ""), str):
                raise ConfigError(f"security.{name}: expected a string")
        subscribers = table.get("subscribers", [])
        if not isinstance(subscribers, list) or not all(isinstance(s, str) for s in subscribers):
            raise ConfigError("security.subscribers: expected a list of key names")
        sensors = table.get("sensors", {})
        if not isinstance(sensors, Mapping):
            raise ConfigError("security.sensors: expected a table of sensor id -> key names")
        mapping: dict[str, tuple[str, ...]] = {}
        for pattern, keys in sensors.items():
            if isinstance(keys, str):
                keys = [keys]
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ConfigError(f"security.sensors.{pattern}: expected a list of key names")
            mapping[pattern] = tuple(keys)
        return cls(
            server_key=table.get("server_key", ""),
            keys_dir=table.get("keys_dir", ""),
            subscribers=tuple(subscribers),
            sensors=mapping,
            base_dir=str(base_dir),
        )

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "security") -> SecurityConfig:
        return cls.from_mapping(load_toml(path).get(table, {}), Path(path).resolve().parent)

    def _path(self, name: str) -> Path:
        if "/" in name or name.endswith((".key", ".key_secret")):
            p = Path(name)
        else:
            p = Path(self.keys_dir or ".") / f"{name}.key"
        return p if p.is_absolute() else Path(self.base_dir) / p

    def public_key(self, name: str) -> bytes:
        """z85 public key of the key called ``name``."""
        path = self._path(name)
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"security: cannot read key {name!r} at {path}: {exc}") from None
        return public


@dataclass(frozen=True)
class CurveKeys:
    """A key pair, and for clients the server's public key (all z85 bytes)."""

    public: bytes
    secret: bytes
    server_public: bytes | None = None

    def apply_server(self, sock: zmq.Socket, domain: str) -> None:
        """Make ``sock`` a CURVE server authenticating peers in ZAP ``domain``."""
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())

    def apply_client(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client of the server whose public key we hold."""
        if self.server_public is None:
            raise ValueError("a CURVE client needs the server's public key")
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_public)


def load_keys(secret_file: str | Path, server_public_file: str | Path | None = None) -> CurveKeys:
    """Read a key pair (``.key_secret`` file) and optionally the server's public key.

    Raises
    ------
    ConfigError
        If a file is missing or holds no secret key where one is needed.
    """
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read key pair {secret_file}: {exc}") from None
    if secret is None:
        raise ConfigError(f"{secret_file} holds no secret key (give the .key_secret file)")
    server = None
    if server_public_file is not None:
        try:
            server, _ = zmq.auth.load_certificate(server_public_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read server key {server_public_file}: {exc}") from None
    return CurveKeys(public, secret, server)


def create_keys(directory: str | Path, name: str, overwrite: bool = False) -> tuple[Path, Path]:
    """Create ``<name>.key`` and ``<name>.key_secret`` in ``directory``.

    The secret file is made readable by its owner only. Existing keys are kept unless
    ``overwrite`` (replacing a key locks out whoever holds the old one).

    Returns
    -------
    (Path, Path)
        The public and the secret key file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if not overwrite and (public.exists() or secret.exists()):
        raise FileExistsError(f"key {name!r} already exists in {directory}")
    pub_file, sec_file = zmq.auth.create_certificates(directory, name)
    os.chmod(sec_file, 0o600)
    return Path(pub_file), Path(sec_file)


class SensorKeyPolicy:
    """Which authenticated key may speak for which sensor id.

    Parameters
    ----------
    sensors : mapping of str to iterable of str
        Sensor id pattern (fnmatch) -> z85 public keys (as text, the ``User-Id``).
    """

    def __init__(self, sensors: Mapping[str, Iterable[str]]):
        self._exact: dict[str, frozenset[str]] = {}
        self._patterns: list[tuple[str, frozenset[str]]] = []
        for pattern, keys in sensors.items():
            keyset = frozenset(keys)
            if any(ch in pattern for ch in "*?["):
                self._patterns.append((pattern, keyset))
            else:
                self._exact[pattern] = self._exact.get(pattern, frozenset()) | keyset
        self._cache: dict[str, frozenset[str]] = {}

    def keys_for(self, sensor_id: str) -> frozenset[str]:
        """Every key registered for ``sensor_id`` (exact entries and matching patterns)."""
        keys = self._cache.get(sensor_id)
        if keys is None:
            keys = self._exact.get(sensor_id, frozenset())
            for pattern, keyset in self._patterns:
                if fnmatch.fnmatchcase(sensor_id, pattern):
                    keys = keys | keyset
            if len(self._cache) >= _POLICY_CACHE:
                self._cache.clear()
            self._cache[sensor_id] = keys
        return keys

    def __call__(self, sensor_id: str, user_id: str | None) -> bool:
        """True if the connection authenticated as ``user_id`` may send for ``sensor_id``."""
        return user_id is not None and user_id in self.keys_for(sensor_id)


class _AllowList:
    """ZAP credentials provider: a set of z85 keys per domain, denials counted."""

    def __init__(self, allowed: Mapping[str, frozenset[bytes]], denied: Counter[str]):
        self.allowed = allowed
        self.denied = denied
        self._lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.allowed.get(domain, frozenset()):
            return True
        with self._lock:  # runs in the authenticator's thread; status reads it
            self.denied[domain] += 1
            n = self.denied[domain]
        if n <= 5 or n % 1000 == 0:
            log.warning("refused key %s on %s (%d refusals so far)", key.decode(), domain, n)
        return False


class CurveServer:
    """The service's side of CurveZMQ: its key pair, the authenticator, the policy.

    Parameters
    ----------
    config : SecurityConfig
        With ``server_key`` set.

    Raises
    ------
    ConfigError
        If a key file is missing or unreadable, or nobody is allowed to publish.
    """

    def __init__(self, config: SecurityConfig):
        if not config.enabled:
            raise ConfigError("security: no server_key configured")
        path = config._path(config.server_key)
        self.keys = load_keys(path)
        sensors = {p: [config.public_key(k) for k in keys] for p, keys in config.sensors.items()}
        if not sensors:
            raise ConfigError("security: no [security.sensors] keys: nobody could publish")
        publishers = frozenset(k for keys in sensors.values() for k in keys)
        subscribers = frozenset(config.public_key(k) for k in config.subscribers)
        self.policy = SensorKeyPolicy(
            {p: [k.decode("ascii") for k in keys] for p, keys in sensors.items()}
        )
        self.denied: Counter[str] = Counter()
        self._provider = _AllowList(
            {DOMAIN_DETECTIONS: publishers, DOMAIN_SUBSCRIBERS: subscribers}, self.denied
        )
        self._auth: ThreadAuthenticator | None = None
        self.summary = (
            f"CURVE on: {len(publishers)} publisher key(s) for {len(sensors)} sensor "
            f"pattern(s), {len(subscribers)} subscriber key(s)"
        )

    def start(self, context: zmq.Context) -> None:
        """Start the ZAP handler on ``context``; must run before any socket binds."""
        auth = ThreadAuthenticator(context, log=logging.getLogger("fusion.security.zap"))
        auth.start()
        for domain in (DOMAIN_DETECTIONS, DOMAIN_SUBSCRIBERS):
            auth.configure_curve_callback(domain, self._provider)
        self._auth = auth

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def secure(self, sock: zmq.Socket, domain: str) -> None:
        """Turn ``sock`` into a CURVE server for ``domain`` (before bind/connect)."""
        self.keys.apply_server(sock, domain)

    def denied_counts(self) -> dict[str, int]:
        with self._provider._lock:
            return dict(self.denied)


INSECURE_BANNER = (
    "\n"
    "************************************************************************\n"
    "*  RUNNING WITHOUT AUTHENTICATION OR ENCRYPTION (no [security] keys).  *\n"
    "*  Anyone who reaches these endpoints can publish detections as any    *\n"
    "*  sensor and read every alert. Use this for local demos only; see     *\n"
    "*  'bufferzone keys' and the [security] table to turn CURVE on.        *\n"
    "************************************************************************"
)


__all__ = [
    "DOMAIN_DETECTIONS",
    "DOMAIN_SUBSCRIBERS",
    "INSECURE_BANNER",
    "CurveKeys",
    "CurveServer",
    "SecurityConfig",
    "SensorKeyPolicy",
    "create_keys",
    "load_keys",
]
