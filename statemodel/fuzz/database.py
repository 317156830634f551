"""Example-database selection: a directory, or Redis through Hypothesis' own backend.

Keys are namespaced by the machine configuration, because every configured machine is
driven through the same factory (whose source-based key alone would mix mutants/targets).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase


class DatabaseError(Exception):
    """The database spec is unusable (exit 2)."""


class NamespacedDatabase(ExampleDatabase):
    """Prefix every key so one shared database holds many configurations apart."""

    def __init__(self, inner: ExampleDatabase, namespace: str):
        super().__init__()
        self.inner = inner
        self.prefix = hashlib.sha256(namespace.encode()).hexdigest()[:16].encode() + b":"

    def _k(self, key: bytes) -> bytes:
        return self.prefix + key

    def save(self, key, value):
        self.inner.save(self._k(key), value)

    def fetch(self, key):
        return self.inner.fetch(self._k(key))

    def delete(self, key, value):
        self.inner.delete(self._k(key), value)

    def move(self, src, dest, value):
        self.inner.move(self._k(src), self._k(dest), value)

    def __repr__(self) -> str:
        return f"NamespacedDatabase({self.inner!r})"


def open_database(spec: str | None, namespace: str) -> ExampleDatabase | None:
    """``None`` → no database; ``redis://host:port/db[?prefix=P]`` → Redis; else a directory."""
    if not spec:
        return None
    scheme, sep, _ = spec.partition("://")
    if sep and scheme.lower() in ("redis", "rediss", "unix"):
        inner = _redis(scheme.lower() + spec[len(scheme):])
    elif sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        # REDIS://… used to become a local directory tree 'REDIS:/host:port/0', silently: every
        # host of a multi-host run kept its own database
        raise DatabaseError(f"cannot use {spec!r} as the example database: unknown scheme {scheme + sep!r} "
                            f"(a directory, or redis://HOST:PORT/DB, rediss://… or unix://PATH)")
    else:
        inner = DirectoryBasedExampleDatabase(_writable_directory(spec))
    return NamespacedDatabase(inner, namespace)


def _writable_directory(spec: str) -> str:
    """Create the directory and write a file in it now: Hypothesis' directory database
    ignores write errors, so an unusable path would otherwise save nothing, silently."""
    path = Path(spec)
    hint = "a directory statemodel can create and write, or redis://HOST:PORT/DB"
    if path.exists() and not path.is_dir():
        raise DatabaseError(f"cannot use {spec!r} as the example database: it is not a directory ({hint})")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".statemodel-write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DatabaseError(f"cannot use {spec!r} as the example database: {reason} ({hint})") from exc
    return spec


def _redis(url: str) -> ExampleDatabase:
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError as exc:  # pragma: no cover - redis is a dependency
        raise DatabaseError(f"Redis support needs 'hypothesis[redis]': {exc}") from exc
    base, _, query_text = url.partition("?")
    query = dict(parse_qsl(query_text))
    prefix = query.pop("prefix", "statemodel")
    # not urlunsplit: it turns unix:///run/redis.sock into unix:/run/redis.sock, which redis refuses
    clean = base + (f"?{urlencode(query)}" if query else "")
    try:
        client = redis.Redis.from_url(clean, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
    except Exception as exc:
        raise DatabaseError(f"cannot reach Redis at {clean}: {exc}") from exc
    return RedisExampleDatabase(client, key_prefix=f"{prefix}:".encode())
