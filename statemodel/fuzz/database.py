"""Example-database selection: a directory, or Redis through Hypothesis' own backend.

Keys are namespaced by the machine configuration, because every configured machine is
driven through the same factory (whose source-based key alone would mix mutants/targets).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    if spec.startswith(("redis://", "rediss://", "unix://")):
        inner = _redis(spec)
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
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", "statemodel")
    clean = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        client = redis.Redis.from_url(clean, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
    except Exception as exc:
        raise DatabaseError(f"cannot reach Redis at {clean}: {exc}") from exc
    return RedisExampleDatabase(client, key_prefix=f"{prefix}:".encode())
