"""API keys with scopes, stored hashed, with optional per-key rate limits.

A client sends its key as ``Authorization: Bearer <key>``. The server holds only a salted scrypt
hash of each key (`hash_key`), in a keys file (`load_keys`, JSON or YAML; `add_key` writes an
entry and returns the new raw key once) or in ``ServeSettings.api_keys``. Each key has scopes:

=============  ============================================================================
scope          routes
=============  ============================================================================
``recommend``  ``POST /recommend``, ``POST /explain``, ``GET /items/{id}/similar``
``events``     ``POST /events``
``users``      ``GET /users/{id}``, ``GET /users/{id}/export``, ``DELETE /users/{id}``
``catalog``    ``PUT /items/{id}``, ``DELETE /items/{id}``
``admin``      ``POST /admin/model``, ``GET /admin/model``, ``GET /metrics``
=============  ============================================================================

``GET /health`` is open (liveness); without a valid key it says only ``status``.

Verifying a presented key costs one scrypt per configured key (tens of milliseconds, by design:
a stolen keys file must not give the keys away cheaply), so verdicts are cached in an LRU keyed by
an HMAC-SHA256 of the presented key under a per-process random secret: a cached key costs
microseconds, and the cache never holds a raw key. With no keys configured every route is open
(loopback only: see `check_bind`); with only ``model_admin_token`` set, only the ``admin`` scope is
enforced (the token acts as an ``admin`` key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lmrec.serve.errors import Forbidden, RateLimited, Unauthorized

__all__ = [
    "SCOPES",
    "AccessControl",
    "KeyEntry",
    "RateLimit",
    "Scope",
    "TokenBucket",
    "add_key",
    "check_bind",
    "hash_key",
    "is_loopback",
    "load_keys",
    "verify_key",
]

log = logging.getLogger(__name__)

Scope = Literal["recommend", "events", "users", "catalog", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)

#: scrypt cost of new hashes: 2**14 x 8 x 128 bytes = 16 MiB of memory per verification
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_KEY_CHARS = 512
REALM = 'Bearer realm="lmrec"'


# ---------------------------------------------------------------------- hashing
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_key(key: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P, salt: bytes | None = None) -> str:
    """A salted scrypt hash of an API key: ``scrypt$<n>$<r>$<p>$<salt>$<digest>`` (base64url).

    Args:
        key: the raw key.
        n, r, p: scrypt cost parameters (stored in the hash, so `verify_key` reads them back).
        salt: 16 random bytes when None.
    """
    if not key:
        raise ValueError("key: an API key must not be empty")
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("hash: expected 'scrypt$<n>$<r>$<p>$<salt>$<digest>' (see lmrec.serve.auth.hash_key)")
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError(f"hash: scrypt parameters n={n}, r={r}, p={p} are not valid (n a power of two)")
    return n, r, p, _unb64(parts[4]), _unb64(parts[5])


def verify_key(key: str, stored: str) -> bool:
    """True when ``key`` hashes to ``stored`` (constant-time comparison of the digests)."""
    n, r, p, salt, digest = _parse_hash(stored)
    computed = hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=len(digest))
    return hmac.compare_digest(computed, digest)


# ---------------------------------------------------------------------- key entries and files
class RateLimit(BaseModel):
    """A token bucket: ``per_second`` requests on average, bursts of up to ``burst``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0.0)
    burst: int | None = Field(None, ge=1, description="bucket size; default max(1, ceil(per_second))")

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second))


class KeyEntry(BaseModel):
    """One API key as the server stores it: never the raw key, only its `hash_key` hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    hash: str = Field(repr=False)
    scopes: tuple[Scope, ...] = Field(min_length=1)
    rate_limit: RateLimit | None = None

    @field_validator("hash")
    @classmethod
    def _check_hash(cls, value: str) -> str:
        _parse_hash(value)
        return value


def _entries(raw: Any, source: str) -> tuple[KeyEntry, ...]:
    items = raw.get("keys") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ValueError(f"{source}: expected a list of keys or {{'keys': [...]}}, got {type(raw).__name__}")
    entries = []
    for i, item in enumerate(items):
        try:
            entries.append(KeyEntry.model_validate(item))
        except ValidationError as exc:  # never echo the input: a raw key put in 'hash' would reach the log
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            msg = str(first["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{source}: keys[{i}].{where}: {msg}") from None
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{source}: key names must be unique; repeated: {dupes}")
    return tuple(entries)


def load_keys(path: str | Path) -> tuple[KeyEntry, ...]:
    """The key entries of a keys file: JSON, or YAML for ``.yaml``/``.yml``; a list of entries or
    ``{"keys": [...]}``, each ``{"name", "hash", "scopes", "rate_limit"?}``.

    Raises:
        ValueError: the file cannot be read or an entry is invalid (the message names the file).
    """
    path = Path(path)
    try:
        text = path.read_text()
        raw = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"api_keys_file {path}: cannot read it ({type(exc).__name__}: {exc})") from None
    return _entries(raw if raw is not None else [], f"api_keys_file {path}")


def add_key(
    path: str | Path,
    name: str,
    scopes: Iterable[str],
    *,
    rate_limit: RateLimit | None = None,
    key: str | None = None,
    n: int = SCRYPT_N,
) -> str:
    """Add a key to a keys file (created when missing, written atomically with mode 0600) and return
    the raw key: the only time it is shown. The file holds only its hash.

    Args:
        path: the keys file (JSON, or YAML for ``.yaml``/``.yml``).
        name: a unique name for the key (logs and 403 answers show it).
        scopes: what it may do (see the module docstring).
        rate_limit: an optional per-key rate limit.
        key: the raw key; None generates 32 random bytes (base64url).
        n: scrypt cost (tests use a lower one).

    Raises:
        ValueError: the name is taken, a scope is unknown, or the file is invalid.
    """
    path = Path(path)
    entries = list(load_keys(path)) if path.exists() else []
    if any(e.name == name for e in entries):
        raise ValueError(f"name: a key named {name!r} is already in {path}")
    bad = sorted(set(scopes) - set(SCOPES))
    if bad:
        raise ValueError(f"scopes: unknown scope(s) {bad}; valid: {list(SCOPES)}")
    key = secrets.token_urlsafe(32) if key is None else key
    entry = KeyEntry(name=name, hash=hash_key(key, n=n), scopes=tuple(scopes), rate_limit=rate_limit)  # type: ignore[arg-type]
    data = {"keys": [e.model_dump(exclude_none=True) for e in [*entries, entry]]}
    text = (
        yaml.safe_dump(data, sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(data, indent=2) + "\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return key


# ---------------------------------------------------------------------- rate limits
class TokenBucket:
    """``capacity`` tokens refilled at ``rate`` per second; each request takes one.

    Args:
        rate: tokens per second.
        capacity: the most tokens it holds (the largest burst).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, rate: float, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = float(capacity)
        self.last = clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there is one (nothing taken)."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


# ---------------------------------------------------------------------- the check
class AccessControl:
    """Who may call what: key verification (cached), scope checks and rate limits.

    Args:
        keys: the configured keys; none leaves every scope open (except ``admin`` with ``admin_token``).
        admin_token: the legacy ``model_admin_token``: a raw key with the ``admin`` scope.
        cache_size: presented keys whose verdict is cached (positive and negative caches each).
        clock: the rate limits' clock.
        max_concurrent_verifications: scrypt runs at once (each takes 16 MiB and tens of milliseconds):
            a flood of made-up keys queues here instead of exhausting memory and every core.
    """

    def __init__(
        self,
        keys: Sequence[KeyEntry] = (),
        *,
        admin_token: str | None = None,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        max_concurrent_verifications: int = 2,
    ) -> None:
        self._verifying = threading.BoundedSemaphore(max_concurrent_verifications)
        entries = list(keys)
        if admin_token is not None:
            entries.append(KeyEntry(name="admin-token", hash=hash_key(admin_token), scopes=("admin",)))
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"api keys: names must be unique; got {names}")
        self.entries = tuple(entries)
        self.enforced: frozenset[str] = frozenset(SCOPES) if keys else frozenset({"admin"} if admin_token else ())
        self.cache_size = cache_size
        self._secret = secrets.token_bytes(32)
        self._good: OrderedDict[bytes, KeyEntry] = OrderedDict()
        self._bad: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self._buckets = {
            e.name: TokenBucket(e.rate_limit.per_second, e.rate_limit.capacity, clock) for e in entries if e.rate_limit
        }

    @classmethod
    def from_settings(cls, settings: Any) -> AccessControl:
        """The keys of ``settings.api_keys_file`` and ``settings.api_keys``, and ``model_admin_token``."""
        keys = list(settings.api_keys)
        if settings.api_keys_file is not None:
            keys.extend(load_keys(settings.api_keys_file))
        return cls(keys, admin_token=settings.model_admin_token)

    @property
    def has_keys(self) -> bool:
        """True when every scope is enforced (API keys are configured)."""
        return self.enforced == frozenset(SCOPES)

    def is_open(self, scope: str) -> bool:
        return scope not in self.enforced

    def _digest(self, key: str) -> bytes:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).digest()

    def cached(self, key: str) -> tuple[bool, KeyEntry | None]:
        """``(True, entry or None)`` when the verdict on ``key`` is cached, else ``(False, None)``."""
        digest = self._digest(key)
        with self._lock:
            entry = self._good.get(digest)
            if entry is not None:
                self._good.move_to_end(digest)
                return True, entry
            if digest in self._bad:
                return True, None
        return False, None

    def identify(self, key: str) -> KeyEntry | None:
        """The entry whose hash ``key`` matches, or None; cached both ways (the slow part: scrypt)."""
        hit, entry = self.cached(key)
        if hit:
            return entry
        with self._verifying:
            found = next((e for e in self.entries if verify_key(key, e.hash)), None)
        digest = self._digest(key)
        with self._lock:
            cache: OrderedDict[bytes, Any] = self._good if found is not None else self._bad
            cache[digest] = found
            if len(cache) > self.cache_size:
                cache.popitem(last=False)
        return found

    @staticmethod
    def bearer(authorization: str | None) -> str | None:
        """The key of an ``Authorization: Bearer <key>`` header (None when absent or of another kind)."""
        if authorization is None:
            return None
        kind, _, key = authorization.strip().partition(" ")
        return (key.strip() or None) if kind.lower() == "bearer" else None

    def check_key(self, authorization: str | None) -> str:
        """The presented key, or `Unauthorized` when there is none or it is too long to be one."""
        key = self.bearer(authorization)
        if key is None:
            raise Unauthorized(
                "authorization",
                "an API key is required: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": REALM},
            )
        if len(key) > MAX_KEY_CHARS:
            raise self.invalid()
        return key

    @staticmethod
    def invalid() -> Unauthorized:
        return Unauthorized(
            "authorization", "invalid API key", headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
        )

    def permit(self, entry: KeyEntry | None, scope: str) -> KeyEntry:
        """Check a verified entry against ``scope`` and its rate limit.

        Raises:
            Unauthorized: ``entry`` is None (the key matched none).
            Forbidden: the key lacks ``scope`` (the message names it).
            RateLimited: the key's rate limit is spent (``Retry-After`` says for how long).
        """
        if entry is None:
            raise self.invalid()
        if scope not in entry.scopes:
            raise Forbidden("authorization", f"API key {entry.name!r} lacks the scope {scope!r} this route needs")
        bucket = self._buckets.get(entry.name)
        if bucket is not None:
            wait = bucket.take()
            if wait > 0:
                retry = max(1, math.ceil(wait))
                raise RateLimited(
                    "authorization",
                    f"API key {entry.name!r} exceeded its rate limit of {bucket.rate:g} requests/s; retry after {retry} s",
                    headers={"Retry-After": str(retry)},
                )
        return entry

    def authorize(self, authorization: str | None, scope: str) -> KeyEntry | None:
        """The whole check, blocking (a cache miss runs scrypt): None for an open scope, else the key."""
        if self.is_open(scope):
            return None
        return self.permit(self.identify(self.check_key(authorization)), scope)


# ---------------------------------------------------------------------- binding
def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, *, has_keys: bool, insecure: bool) -> None:
    """Refuse to serve a non-loopback address without API keys unless ``insecure``; log what is open.

    Raises:
        ValueError: ``host`` is not loopback, no keys are configured and ``insecure`` is False.
    """
    if has_keys:
        return
    if is_loopback(host):
        log.warning("no API keys configured: every route is open to anyone who can reach %s (loopback only)", host)
        return
    if not insecure:
        raise ValueError(
            f"host: refusing to serve {host!r} (not a loopback address) without API keys; give a keys file "
            "(--keys-file / api_keys_file) or, to serve every route to anyone who can reach it, --insecure"
        )
    log.warning(
        "INSECURE: serving %s without API keys: anyone who can reach this port can read user histories, "
        "erase users, overwrite items and swap the model",
        host,
    )
