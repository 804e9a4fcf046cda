"""Persistent stores for loops: which slot a loop last ran, and leases for exclusive runs.

Design decisions (the user-facing version is docs/stores.md):

* **A small protocol.** A store records, per loop name, the latest slot claimed
  (``claim_slot`` is an atomic compare-and-set: the slot is recorded only if it is later than
  the one recorded, and the caller learns whether it won) and reads it back (``last_slot``). It
  keeps one lease per loop name: a claim that carries a :class:`Lease` first takes or renews
  it, and records nothing if someone else holds it; ``release_lease`` gives it up. Instants are
  integer nanoseconds since the Unix epoch.
* **One operation per slot.** The lease and the claim are one atomic operation (one
  transaction in SQLite, one statement in PostgreSQL), because each round trip to a server,
  and each SQLite transaction, costs more than an iteration of a loop on a virtual event loop.
* **Claim, then run: at most once.** A loop claims a slot *before* its body runs. A process that
  dies in the body has claimed the slot, so neither its restart nor another process runs that
  slot again. Two processes can never both win one slot, with or without a lease.
* **The caller's clock decides leases.** ``acquire_lease`` takes "now" from the caller (the loop
  reads it from its event loop), so leases expire on virtual time in simulations. Across hosts,
  the lease's time to live must exceed the clocks' disagreement (NTP keeps it to milliseconds).
* **Nothing that can wait runs on the event loop's thread.** ``SQLiteStore`` uses the standard
  library's ``sqlite3``. Opening the file, waiting for another process's lock (``busy_timeout``),
  checkpoints (they fsync) and closing run on a worker thread, through ``run_in_executor``,
  which `VirtualEventLoop` counts as work in flight. But a round trip to a thread costs ten
  times an SQLite write, so each operation first runs on the calling thread in a way that
  cannot wait: busy timeout zero (a lock held elsewhere fails it at once, before it wrote
  anything, and a worker thread runs it again), no fsync on commit (WAL,
  ``synchronous=NORMAL``), no checkpoints (every so many writes go to a worker thread, which
  checkpoints after them). This is asyncio's own pattern for sockets: try the non-blocking
  call, and wait elsewhere only when it would block. Such a store starts a thread per job
  handed over, so that none idles between jobs (a `VirtualEventLoop` checks each idle thread
  before every jump of time). Writes are single statements (upserts) or one ``BEGIN
  IMMEDIATE`` transaction, atomic. ``PostgresStore`` uses ``asyncpg`` (an optional
  dependency) on one connection, reconnected after a failure.
* **Errors name the store.** Every failure of the underlying database (corrupt file, lock held
  too long, server unreachable) is raised as :class:`StoreError`, whose message starts with the
  store's name; the loop logs it, keeps its schedule and retries its writes.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self, TypeVar, runtime_checkable

from ._units import NS_PER_SECOND, positive_seconds_to_ns, seconds_to_ns

if TYPE_CHECKING:
    import asyncpg

__all__ = (
    "Lease",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "as_store",
)

_T = TypeVar("_T")


class StoreError(Exception):
    """A store could not be read or written; the message starts with the store's name.

    Attributes:
        store: The name of the store (``Store.name``).
    """

    def __init__(self, store: str, message: str) -> None:
        super().__init__(f"{store}: {message}")
        self.store = store


class Lease(NamedTuple):
    """Who claims a slot of an exclusive loop, and for how long it keeps the loop's lease.

    Attributes:
        holder: Who takes the lease (a loop uses its host, process id and a random part).
        now_ns: The caller's clock now, in epoch ns: a lease whose expiry is at or before it
            has expired.
        ttl_ns: How long the lease lasts from ``now_ns``, in ns.
    """

    holder: str
    now_ns: int
    ttl_ns: int


@runtime_checkable
class Store(Protocol):
    """What a loop needs from a persistent store. All instants are epoch nanoseconds.

    Implementations must make ``claim_slot`` atomic across every process that uses the same
    underlying database, and raise :class:`StoreError` for failures of it.
    """

    @property
    def name(self) -> str:
        """A name for logs and errors, such as ``sqlite:/srv/bot/bot-state.sqlite3``."""
        ...

    async def claim_slot(self, loop: str, slot_ns: int, lease: Lease | None = None) -> bool:
        """Record that ``loop`` runs slot ``slot_ns``, if it is later than the one recorded.

        With a ``lease``, first take the lease of ``loop`` for ``lease.holder`` until
        ``lease.now_ns + lease.ttl_ns``, or renew it; if someone else holds it (and it has not
        expired), record nothing. Both in one atomic step.

        Returns:
            True if this call recorded the slot (the caller runs it); False if that slot or a
            later one was already recorded (by anyone), or another holder has the lease.
        """
        ...

    async def last_slot(self, loop: str) -> int | None:
        """The latest slot recorded for ``loop``, or None if none ever was."""
        ...

    async def release_lease(self, loop: str, holder: str) -> None:
        """Give up the lease of ``loop`` if ``holder`` holds it (otherwise do nothing)."""
        ...

    async def close(self) -> None:
        """Release the store's resources; it reopens on next use."""
        ...


def as_store(store: object) -> Store:
    """Validate ``loop(store=...)``: a :class:`Store`, or a path for a :class:`SQLiteStore`.

    Raises:
        TypeError: ``store`` is neither.
    """
    if isinstance(store, str | os.PathLike):
        return SQLiteStore(_sqlite_file(store, "store"))
    if isinstance(store, Store):
        return store
    raise TypeError(
        "store must be a path (str or os.PathLike) to an SQLite file, or a Store such as"
        f" SQLiteStore, PostgresStore or MemoryStore (got {store!r})."
    )


class _Closing:
    """``async with store:`` closes the store at the end of the block."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class MemoryStore(_Closing):
    """A store in this process's memory, for tests and simulations (nothing survives the process).

    Share one object between "restarts" of a loop to simulate persistence.
    """

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self._leases: dict[str, tuple[str, int]] = {}

    @property
    def name(self) -> str:
        """``memory:`` and the object's id."""
        return f"memory:{id(self):#x}"

    def __repr__(self) -> str:
        return f"<MemoryStore {self.name}>"

    async def claim_slot(self, loop: str, slot_ns: int, lease: Lease | None = None) -> bool:
        """See :meth:`Store.claim_slot`."""
        if lease is not None:
            current = self._leases.get(loop)
            if current is not None and current[0] != lease.holder and current[1] > lease.now_ns:
                return False
            self._leases[loop] = (lease.holder, lease.now_ns + lease.ttl_ns)
        last = self._slots.get(loop)
        if last is not None and last >= slot_ns:
            return False
        self._slots[loop] = slot_ns
        return True

    async def last_slot(self, loop: str) -> int | None:
        """See :meth:`Store.last_slot`."""
        return self._slots.get(loop)

    async def release_lease(self, loop: str, holder: str) -> None:
        """See :meth:`Store.release_lease`."""
        current = self._leases.get(loop)
        if current is not None and current[0] == holder:
            del self._leases[loop]

    async def close(self) -> None:
        """Nothing to release."""


_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS looptime_slots (loop TEXT PRIMARY KEY, slot_ns INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS looptime_leases"
    " (loop TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ns INTEGER NOT NULL)",
)
# One statement each: a claim is atomic without an explicit transaction, and the write lock is
# taken at once (no read-then-write upgrade that WAL would refuse with SQLITE_BUSY_SNAPSHOT).
_CLAIM = (
    "INSERT INTO looptime_slots (loop, slot_ns) VALUES (?, ?)"
    " ON CONFLICT (loop) DO UPDATE SET slot_ns = excluded.slot_ns"
    " WHERE looptime_slots.slot_ns < excluded.slot_ns"
)
_LEASE = (
    "INSERT INTO looptime_leases (loop, holder, expires_ns) VALUES (?, ?, ?)"
    " ON CONFLICT (loop) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns"
    " WHERE looptime_leases.holder = excluded.holder OR looptime_leases.expires_ns <= ?"
)


# How often the worker thread checkpoints the WAL that inline writes fill: a write adds a 4 KiB
# page or a few, so the WAL stays within a few megabytes (SQLite's own default checkpoints every
# 1000 pages), and the checkpoint's milliseconds (it fsyncs) add a few microseconds per write.
_INLINE_WRITES_PER_CHECKPOINT = 500


def _sqlite_file(path: str | os.PathLike[str], parameter: str) -> str | os.PathLike[str]:
    """Refuse a path that can never be an SQLite file: empty, or an existing folder."""
    if not os.fspath(path):
        raise ValueError(f"{parameter} must name an SQLite file (got an empty path).")
    if Path(path).is_dir():
        raise ValueError(f"{parameter} must name an SQLite file, not a folder (got {path!r}).")
    return path


class SQLiteStore(_Closing):
    """A store in an SQLite file, shared safely by the processes of one host.

    The file and its tables are created on first use. WAL journaling; writers wait up to
    ``busy_timeout`` seconds for another process's write. WAL does not work over a network file
    system: for several hosts, use :class:`PostgresStore`.

    Everything that can wait (opening the file, waiting for another connection's lock,
    checkpoints and their fsyncs, closing) runs on a worker thread. With ``inline`` (the
    default), an operation first runs on the calling thread, the event loop's, in a way that
    cannot wait: with no busy timeout (a lock held elsewhere fails it at once, having written
    nothing, and a worker thread takes it over) and no fsync on commit (WAL with
    ``synchronous=NORMAL``). So it costs what writing a log line costs, not a round trip to a
    thread.

    Args:
        path: The database file.
        busy_timeout: How long a write waits for a lock held by another connection, in seconds
            (or a timedelta).
        inline: Try each operation on the calling thread first, as described above. False sends
            every operation to a worker thread of the store's own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float | timedelta = 5.0,
        inline: bool = True,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or os.PathLike (got {path!r}).")
        if not isinstance(inline, bool):
            raise TypeError(f"inline must be True or False (got {inline!r}).")
        path = _sqlite_file(path, "path")
        self.path = Path(path)
        self.busy_timeout = seconds_to_ns(busy_timeout, "busy_timeout") / NS_PER_SECOND
        self.inline = inline
        self._busy_timeout_pragma = f"PRAGMA busy_timeout = {round(self.busy_timeout * 1000)}"
        # One connection, used by whichever thread holds _connection_lock: the calling thread
        # takes it without blocking (finding it held, it hands the operation to a worker
        # thread), a worker thread waits for it.
        self._connection: sqlite3.Connection | None = None
        self._connection_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None  # not inline: the store's own thread
        self._executor_lock = threading.Lock()
        self._writes = 0

    @property
    def name(self) -> str:
        """``sqlite:`` and the file's absolute path."""
        return f"sqlite:{self.path.absolute()}"

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.name}>"

    async def claim_slot(self, loop: str, slot_ns: int, lease: Lease | None = None) -> bool:
        """See :meth:`Store.claim_slot`."""
        if lease is None:
            return await self._write(lambda db: db.execute(_CLAIM, (loop, slot_ns)).rowcount == 1)
        expires_ns = lease.now_ns + lease.ttl_ns

        def claim_with_lease(db: sqlite3.Connection) -> bool:
            # IMMEDIATE: the write lock from the start, so the lease cannot change in between.
            db.execute("BEGIN IMMEDIATE")
            try:
                held = db.execute(_LEASE, (loop, lease.holder, expires_ns, lease.now_ns))
                won = held.rowcount == 1 and db.execute(_CLAIM, (loop, slot_ns)).rowcount == 1
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return won

        return await self._write(claim_with_lease)

    async def last_slot(self, loop: str) -> int | None:
        """See :meth:`Store.last_slot`."""

        def read(db: sqlite3.Connection) -> int | None:
            row = db.execute(
                "SELECT slot_ns FROM looptime_slots WHERE loop = ?", (loop,)
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._call(read)

    async def release_lease(self, loop: str, holder: str) -> None:
        """See :meth:`Store.release_lease`."""
        await self._write(
            lambda db: db.execute(
                "DELETE FROM looptime_leases WHERE loop = ? AND holder = ?", (loop, holder)
            )
        )

    async def close(self) -> None:
        """Close the connection and stop the worker thread; the store reopens on next use."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None or self._connection is not None:
            # Closing the last connection to the file checkpoints it: a worker thread's job.
            await self._off_thread(self._disconnect, executor)
        if executor is not None:
            executor.shutdown(wait=False)

    async def _write(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        if not self.inline:
            return await self._call(operation)  # the connection checkpoints as SQLite does
        # Inline, the connection never checkpoints (a checkpoint fsyncs): every so many writes,
        # one goes to a worker thread, which checkpoints after it, keeping the WAL small.
        self._writes += 1
        if self._writes < _INLINE_WRITES_PER_CHECKPOINT:
            return await self._call(operation)
        self._writes = 0

        def then_checkpoint(db: sqlite3.Connection) -> _T:
            result = operation(db)
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            return result

        return await self._off_thread(functools.partial(self._run, then_checkpoint))

    async def _call(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        if not self.inline:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="looptime-sqlite")
                executor = self._executor
            return await self._off_thread(functools.partial(self._run, operation), executor)
        if self._connection is not None and self._connection_lock.acquire(blocking=False):
            try:
                db = self._connection
                if db is not None:
                    return operation(db)
            except sqlite3.Error:
                # Busy or locked: another connection writes, and a worker thread waits for it.
                # Anything else: the worker thread meets it too, and reports it.
                pass
            finally:
                self._connection_lock.release()
        return await self._off_thread(functools.partial(self._run, operation))

    @staticmethod
    async def _off_thread(job: Callable[[], _T], executor: ThreadPoolExecutor | None = None) -> _T:
        """Run ``job`` on ``executor``, or else on a thread of its own: an inline store needs a
        thread now and then, and a thread idling between its jobs would cost a
        `VirtualEventLoop` a check before every jump of time."""
        event_loop = asyncio.get_running_loop()
        if executor is not None:
            return await event_loop.run_in_executor(executor, job)
        executor = ThreadPoolExecutor(1, thread_name_prefix="looptime-sqlite")
        try:
            return await event_loop.run_in_executor(executor, job)
        finally:
            executor.shutdown(wait=False)

    def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """On a worker thread: run ``operation``, waiting up to ``busy_timeout`` for locks;
        database errors become StoreError."""
        with self._connection_lock:
            try:
                db = self._connection
                if db is None:
                    db = self._connection = self._connect()
                elif self.inline:
                    db.execute(self._busy_timeout_pragma)
                try:
                    return operation(db)
                finally:
                    if self.inline:
                        db.execute("PRAGMA busy_timeout = 0")  # back to never waiting
            except sqlite3.Error as error:
                self._close_connection()  # a corrupt or replaced file: start afresh next time
                raise StoreError(self.name, f"{type(error).__name__}: {error}") from error

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: every statement commits on its own (ours are single upserts).
        # check_same_thread=False: the connection serves the calling and the worker threads,
        # one at a time (_connection_lock).
        db = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            db.execute(self._busy_timeout_pragma)
            deadline = time.monotonic() + self.busy_timeout
            while True:
                try:
                    self._set_up(db)
                    break
                except sqlite3.OperationalError as error:
                    # Processes setting up one new file at once: SQLite refuses one of them at
                    # once, without busy_timeout, where waiting could deadlock. It can retry.
                    if "locked" not in str(error) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
            if self.inline:
                db.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _set_up(db: sqlite3.Connection) -> None:
        """WAL journaling and the tables (each statement does nothing the second time)."""
        db.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts the file (a power cut may lose the last writes),
        # and a commit does not fsync.
        db.execute("PRAGMA synchronous = NORMAL")
        for statement in _SQLITE_SCHEMA:
            db.execute(statement)

    def _close_connection(self) -> None:
        """With ``_connection_lock`` held."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _disconnect(self) -> None:
        with self._connection_lock:
            self._close_connection()


_POSTGRES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS looptime_slots (loop TEXT PRIMARY KEY, slot_ns BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS looptime_leases"
    " (loop TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ns BIGINT NOT NULL)",
)

# Records a later slot only; returns a row if it did.
_PG_SLOT_UPSERT = (
    " ON CONFLICT (loop) DO UPDATE SET slot_ns = excluded.slot_ns"
    " WHERE looptime_slots.slot_ns < excluded.slot_ns RETURNING 1"
)
_PG_CLAIM = "INSERT INTO looptime_slots (loop, slot_ns) VALUES ($1, $2)" + _PG_SLOT_UPSERT
# One statement: the lease's upsert runs in a data-modifying CTE, and the claim inserts only if
# it returned a row (the lease is held), atomically.
_PG_CLAIM_WITH_LEASE = (
    "WITH held AS ("
    "INSERT INTO looptime_leases (loop, holder, expires_ns) VALUES ($1, $3, $4)"
    " ON CONFLICT (loop) DO UPDATE SET holder = excluded.holder,"
    " expires_ns = excluded.expires_ns"
    " WHERE looptime_leases.holder = excluded.holder OR looptime_leases.expires_ns <= $5"
    " RETURNING 1)"
    " INSERT INTO looptime_slots (loop, slot_ns) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM held)"
    + _PG_SLOT_UPSERT
)

# The key of the advisory lock held while the tables are created ("looptime" in ASCII).
_SCHEMA_LOCK = 0x6C6F6F7074696D65


class PostgresStore(_Closing):
    """A store in a PostgreSQL database, for bots that run on several hosts.

    Needs ``asyncpg`` (``pip install looptime-tasks[postgres]``). The tables are created on
    first use. One connection, opened on first use and reopened after a failure.

    Args:
        dsn: A ``postgresql://`` URL, as ``asyncpg.connect`` takes it.
        connect_timeout: How long opening the connection may take, in seconds (or a
            timedelta).
        **connect_kwargs: More keyword arguments for ``asyncpg.connect`` (``ssl``,
            ``statement_cache_size=0`` behind PgBouncer, ...).
    """

    def __init__(
        self, dsn: str, *, connect_timeout: float | timedelta = 10.0, **connect_kwargs: Any
    ) -> None:
        if not isinstance(dsn, str):
            raise TypeError(f"dsn must be a str such as 'postgresql://host/db' (got {dsn!r}).")
        self.dsn = dsn
        self.connect_timeout = (
            positive_seconds_to_ns(connect_timeout, "connect_timeout") / NS_PER_SECOND
        )
        self._connect_kwargs = connect_kwargs
        self._connection: asyncpg.Connection | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def name(self) -> str:
        """``postgresql:`` and the DSN without its password."""
        return _redact(self.dsn)

    def __repr__(self) -> str:
        return f"<PostgresStore {self.name}>"

    async def claim_slot(self, loop: str, slot_ns: int, lease: Lease | None = None) -> bool:
        """See :meth:`Store.claim_slot`."""
        if lease is None:
            claimed = await self._fetchval(_PG_CLAIM, loop, slot_ns)
        else:
            claimed = await self._fetchval(
                _PG_CLAIM_WITH_LEASE,
                loop,
                slot_ns,
                lease.holder,
                lease.now_ns + lease.ttl_ns,
                lease.now_ns,
            )
        return claimed is not None

    async def last_slot(self, loop: str) -> int | None:
        """See :meth:`Store.last_slot`."""
        value = await self._fetchval("SELECT slot_ns FROM looptime_slots WHERE loop = $1", loop)
        return None if value is None else int(value)

    async def release_lease(self, loop: str, holder: str) -> None:
        """See :meth:`Store.release_lease`."""
        await self._fetchval(
            "DELETE FROM looptime_leases WHERE loop = $1 AND holder = $2", loop, holder
        )

    async def close(self) -> None:
        """Close the connection; the store reconnects on next use."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _fetchval(self, query: str, *args: object) -> Any:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one operation at a time on the one connection
            try:
                connection = await self._connected()
                return await connection.fetchval(query, *args)
            except (OSError, TimeoutError) as error:
                await self._drop()
                raise StoreError(self.name, f"{type(error).__name__}: {error}") from error
            except Exception as error:
                if not _is_postgres_error(error):
                    raise
                await self._drop()
                raise StoreError(self.name, f"{type(error).__name__}: {error}") from error

    async def _connected(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            try:
                import asyncpg  # optional: only PostgresStore needs it
            except ImportError as error:
                raise StoreError(
                    self.name,
                    "PostgresStore needs asyncpg: pip install 'looptime-tasks[postgres]'",
                ) from error
            connection = await asyncpg.connect(
                self.dsn, timeout=self.connect_timeout, **self._connect_kwargs
            )
            try:
                # Concurrent CREATE TABLE IF NOT EXISTS can collide in PostgreSQL's catalog:
                # processes starting together take turns.
                async with connection.transaction():
                    await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                    for statement in _POSTGRES_SCHEMA:
                        await connection.execute(statement)
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
        return self._connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()


def _is_postgres_error(error: Exception) -> bool:
    """Whether ``error`` comes from asyncpg (without importing it where it is not installed)."""
    return type(error).__module__.startswith("asyncpg")


def _redact(dsn: str) -> str:
    """The DSN without its password (``postgresql://user:secret@host`` -> ``user:***@host``)."""
    scheme, separator, rest = dsn.partition("://")
    if not separator:
        return dsn
    credentials, at, location = rest.rpartition("@")
    if at and ":" in credentials:
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{location}"
    return dsn
