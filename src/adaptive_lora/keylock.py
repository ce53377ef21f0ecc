"""Exclusive claims on files that work on shared file systems, and compute-once file caches.

A :class:`Claim` is a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on local file
systems and on NFSv3+, where ``flock`` often is not): whoever creates it holds it. A heartbeat
thread touches it every ``heartbeat_s``; a claim whose file was not touched for
``stale_after_s`` belongs to a dead process (or a dead node) and is taken over. The clocks of the
machines sharing a folder must agree to well within ``stale_after_s`` (NTP does).

Takeover is serialised by a second exclusive-create file, ``<claim>.takeover``: its holder checks
again, under it, that the claim is still the same stale one, deletes it and creates its own with
``O_EXCL``. A taker that finds the claim replaced meanwhile stands down, so a live claim is never
deleted; and a plain creator racing the taker for the freed path loses or wins by ``O_EXCL``, so
there is never more than one holder. A ``.takeover`` file older than ``stale_after_s`` (a taker
that died in between) is removed by the next taker.

:func:`compute_once` guards one cache entry (``<key>.json``) with a claim on ``<key>.json.lock``:
the first process computes and writes the value atomically, the others wait for the file, so N
workers that need the same probe compute it once. :class:`FileCache` is the same thing behind
the ``in`` / ``[]`` interface of a dict (the step-0 evaluation cache of a sweep).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from . import _io

__all__ = ["Claim", "FileCache", "claim_info", "compute_once", "is_held", "DEFAULT_HEARTBEAT_S", "DEFAULT_STALE_AFTER_S"]

# 10 s between touches costs nothing; 60 s without one is six missed beats: a process that is only
# slow (a stalled disk, a busy node) is not mistaken for a dead one.
DEFAULT_HEARTBEAT_S = 10.0
DEFAULT_STALE_AFTER_S = 60.0


def claim_info(path: str | os.PathLike) -> dict | None:
    """The JSON a claim file holds, or None when it is missing or unreadable (mid-write)."""
    try:
        data = _io.read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _age_s(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


def _holder_gone(info: dict | None) -> bool:
    """True when the claim was made by a process of this machine that no longer exists: its
    claim is taken over at once instead of after ``stale_after_s`` (a SIGKILLed worker)."""
    if not info or info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def is_held(path: str | os.PathLike, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> bool:
    """True while a live claim holds ``path`` (it exists, is fresh, and its holder is not known dead)."""
    path = Path(path)
    age = _age_s(path)
    return age is not None and age <= stale_after_s and not _holder_gone(claim_info(path))


class Claim:
    """An exclusive-create claim file with a heartbeat; ``acquire()`` is non-blocking.

    ``info`` is written into the file (with ``host``, ``pid``, ``token`` and ``claimed_at``) so a
    refusal or a takeover can say who held it. Use as ``if c.acquire(): try: ... finally: c.release()``.
    """

    def __init__(self, path: str | os.PathLike, info: dict | None = None,
                 heartbeat_s: float = DEFAULT_HEARTBEAT_S, stale_after_s: float = DEFAULT_STALE_AFTER_S):
        if not 0 < heartbeat_s < stale_after_s:
            raise ValueError(f"heartbeat_s ({heartbeat_s}) must be positive and below stale_after_s ({stale_after_s})")
        self.path = Path(path)
        self.heartbeat_s, self.stale_after_s = float(heartbeat_s), float(stale_after_s)
        self.token = uuid.uuid4().hex
        self.info = {**(info or {}), "host": socket.gethostname(), "pid": os.getpid(), "token": self.token}
        self.took_over: dict | None = None  # the stale claim this one replaced, if any
        self.lost = False  # set by the heartbeat when the file is no longer ours
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ acquire / release

    def acquire(self) -> bool:
        """Create the claim, or take over a stale one; False when a live claim holds the path."""
        if self._create():
            return self._held()
        age = _age_s(self.path)
        if age is None:  # released between our create and the stat: try once more
            return self._create() and self._held()
        stale = claim_info(self.path)
        dead = _holder_gone(stale)
        if age <= self.stale_after_s and not dead:
            return False
        if not self._move_aside(stale, by_age=not dead):
            return False
        self.took_over = stale or {}
        return self._create() and self._held()

    def release(self) -> None:
        """Stop the heartbeat and delete the file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.is_ours():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def is_ours(self) -> bool:
        info = claim_info(self.path)
        return bool(info) and info.get("token") == self.token

    def holder(self) -> dict | None:
        """Who holds the path now (the file's JSON), if anyone."""
        return claim_info(self.path)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------------ internals

    def _create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        info = {**self.info, "claimed_at": time.time()}
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(info) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return True

    def _held(self) -> bool:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat:{self.path.name}", daemon=True)
        self._thread.start()
        return True

    def _move_aside(self, stale: dict | None, by_age: bool) -> bool:
        """Delete the stale claim, under the takeover lock; False when it changed meanwhile (a new
        holder, or a heartbeat that resumed) or another taker holds the lock."""
        lock = self.path.with_name(self.path.name + ".takeover")
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            age = _age_s(lock)
            if age is not None and age > self.stale_after_s:  # its taker died mid-takeover
                try:
                    os.unlink(lock)
                except FileNotFoundError:
                    pass
            return False
        try:
            now, age = claim_info(self.path), _age_s(self.path)
            if age is None:
                return True  # released meanwhile: the path is free for O_EXCL
            if (now or {}).get("token") != (stale or {}).get("token"):
                return False  # another process holds it now
            if by_age and age <= self.stale_after_s:
                return False  # its heartbeat resumed
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return True
        finally:
            os.unlink(lock)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.is_ours():
                self.lost = True  # taken over (we were paused past stale_after_s) or deleted
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.lost = True
                return


def _distributed() -> bool:
    # The processes of one ``accelerate launch`` compute a cached value together (collectives):
    # one of them waiting for another's lock would deadlock, so they keep the unguarded behaviour
    # (each writes the same value atomically).
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def compute_once(path: str | os.PathLike, compute: Callable[[], Any], poll_s: float = 0.2,
                 heartbeat_s: float = DEFAULT_HEARTBEAT_S,
                 stale_after_s: float = DEFAULT_STALE_AFTER_S,
                 read: Callable[[Path], Any] = _io.read_json,
                 write: Callable[[Path, Any], None] = _io.atomic_write_json) -> tuple[Any, bool]:
    """``(value, computed_here)``: ``read(path)``, or ``compute()`` stored with ``write(path, value)``.

    Among processes sharing the folder, one computes and the others wait (polling every
    ``poll_s``) for its file; a holder that died is taken over after ``stale_after_s``. When
    ``compute`` raises, the lock is released and the exception propagates (a waiter then computes).
    ``write`` must be atomic (a temporary file renamed into place): a waiter reads as soon as the
    file exists. The default pair stores JSON; ``data/cache.py`` stores tensors.
    """
    path = Path(path)
    if _distributed():
        if path.is_file():
            return read(path), False
        value = compute()
        write(path, value)
        return value, True
    lock = Claim(path.with_name(path.name + ".lock"), {"what": "cache entry"}, heartbeat_s, stale_after_s)
    while True:
        if path.is_file():
            return read(path), False
        if lock.acquire():
            try:
                if path.is_file():  # written between our check and our claim
                    return read(path), False
                value = compute()
                write(path, value)
                return value, True
            finally:
                lock.release()
        time.sleep(poll_s)


class FileCache:
    """A dict-like cache whose entries are ``<folder>/<key>.json``, each computed once.

    Made for the pattern ``if key in cache: use cache[key] else: cache[key] = compute()``
    (the step-0 evaluation in ``training.run``): ``key in cache`` is True once the file exists;
    when it does not, the first asker claims the key and gets False (it computes and stores),
    the others wait for the file. :meth:`release` drops the claims of entries never stored (the
    run failed between the question and the answer), so waiters take over at once.
    Keys must be file-name safe (the callers' keys are ``kind-<hex>``).
    """

    def __init__(self, folder: str | os.PathLike, poll_s: float = 0.2, heartbeat_s: float = DEFAULT_HEARTBEAT_S,
                 stale_after_s: float = DEFAULT_STALE_AFTER_S):
        self.folder = Path(folder)
        self.poll_s, self.heartbeat_s, self.stale_after_s = poll_s, heartbeat_s, stale_after_s
        self._held: dict[str, Claim] = {}
        self._memo: dict[str, Any] = {}
        self._local = _distributed()  # see _distributed: an in-process dict, as before

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def __contains__(self, key: str) -> bool:
        if key in self._memo:
            return True
        if self._local:
            return False
        path = self._path(key)
        while True:
            if path.is_file():
                return True
            if key in self._held:
                return False
            lock = Claim(path.with_name(path.name + ".lock"), {"what": "cache entry"},
                         self.heartbeat_s, self.stale_after_s)
            if lock.acquire():
                if path.is_file():
                    lock.release()
                    return True
                self._held[key] = lock
                return False
            time.sleep(self.poll_s)

    def __getitem__(self, key: str) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = _io.read_json(self._path(key))
            except FileNotFoundError:
                raise KeyError(key) from None
        return self._memo[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._memo[key] = value
        if not self._local:
            _io.atomic_write_json(self._path(key), value)
        lock = self._held.pop(key, None)
        if lock is not None:
            lock.release()

    def release(self) -> None:
        """Release the claims of keys asked for but never stored."""
        for lock in self._held.values():
            lock.release()
        self._held.clear()
