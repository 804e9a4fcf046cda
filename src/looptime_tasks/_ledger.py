"""The store side of a loop's run: catch-up on start, claiming slots, leases, failing stores.

Design decisions (the user-facing version is docs/stores.md):

* **At most once.** A slot is claimed in the store before its body runs (see `_store`).
* **Catch-up is one decision at start.** The latest slot at or before "now" runs at once if it
  was not recorded and is no older than ``catch_up``; older missed slots are skipped with one log
  line (never a burst: at most one late run, as for overruns).
* **A first start misses nothing.** A loop whose name the store never recorded did not exist at
  its earlier slots (a first deploy at 09:10 of a daily 09:00 job), so nothing is caught up, as
  APScheduler and cron do not run a job's slots from before it existed. It also keeps at most
  once when a store is replaced by an empty one: what cannot be known to be missed is not run.
* **A record from the future is reported.** A recorded slot later than "now" (the clock went
  back, or a test runs on a production store) is logged as a WARNING at start, since an
  exclusive loop skips every slot up to it (they count as run).
* **A failing store never stops a loop.** Every `StoreError` is logged (ERROR, on the
  ``looptime_tasks`` logger; the message names the store) and the loop keeps its schedule:
  - reading the last slot at start fails: no catch-up (we cannot tell whether it ran);
  - a plain loop cannot record a slot: the body runs anyway, and the latest unrecorded slot is
    written with the next successful write (and at the end of the run): nothing recorded is
    ever lost, because records only move forward;
  - an exclusive loop cannot take its lease or claim its slot: the slot is skipped, because
    running it could mean running it twice.
* **One name per store per process.** Two running loops with one name and one store (by the
  store's ``name``) would claim each other's slots; the second ``start()`` is an error.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from ._slots import WallSchedule
from ._store import Lease, Store, StoreError
from ._units import from_epoch_ns

__all__ = ("Ledger",)

_logger = logging.getLogger("looptime_tasks")

# (store name, loop name) -> the ledger of the running loop that uses them.
_running: dict[tuple[str, str], Ledger] = {}


def _iso(ns: int) -> str:
    return from_epoch_ns(ns).isoformat()


class Ledger:
    """What one run of a loop with a store asks of the store.

    Args:
        store: The store.
        loop_name: The loop's name, the key of its records.
        catch_up_ns: How late the latest missed slot may still run at start, in ns; None or 0:
            missed slots never run.
        exclusive: Whether one process at a time runs each slot (a lease).
        lease_ns: The lease's time to live, in ns (renewed at every slot).
    """

    def __init__(
        self,
        store: Store,
        loop_name: str,
        *,
        catch_up_ns: int | None,
        exclusive: bool,
        lease_ns: int,
    ) -> None:
        self.store = store
        self.loop_name = loop_name
        self.catch_up_ns = catch_up_ns
        self.exclusive = exclusive
        self.lease_ns = lease_ns
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._unrecorded: int | None = None  # the latest slot run but not yet recorded
        self._key = (store.name, loop_name)

    def register(self) -> None:
        """Claim the loop's name in this process (call at start; synchronous).

        Raises:
            RuntimeError: another running loop uses this name with this store.
        """
        other = _running.get(self._key)
        if other is not None and other is not self:
            raise RuntimeError(
                f"Another running loop is named {self.loop_name!r} in the store"
                f" {self.store.name}: give each loop with a store its own name=."
            )
        _running[self._key] = self

    def unregister(self) -> None:
        """Free the name (call when the run ends)."""
        if _running.get(self._key) is self:
            del _running[self._key]

    async def first_slot(self, schedule: WallSchedule, now_ns: int) -> int:
        """The first slot of the run: the missed latest slot if it may still run, else the next.

        A result at or before ``now_ns`` runs at once.
        """
        upcoming = schedule.first_slot_at_or_after_ns(now_ns)
        if upcoming == now_ns:
            return upcoming
        try:
            due = schedule.last_slot_at_or_before_ns(now_ns)
        except OverflowError:
            return upcoming
        try:
            last = await self.store.last_slot(self.loop_name)
        except StoreError as error:
            _logger.error(
                "Loop %r: cannot read its last run (%s); no catch-up on this start, the loop"
                " keeps its schedule",
                self.loop_name,
                error,
            )
            return upcoming
        if last is not None and last > now_ns:
            # Never silent: an exclusive loop would skip every slot up to that record.
            _logger.warning(
                "Loop %r: the store %s records a run at %s, later than now (%s): the clock went"
                " back, or the store was written under another clock (a test or simulation on"
                " a production store?). %s",
                self.loop_name,
                self.store.name,
                _iso(last),
                _iso(now_ns),
                "Slots up to that one count as run and are skipped (at most once)."
                if self.exclusive
                else "No catch-up on this start.",
            )
            return upcoming
        if last is None or last >= due:
            return upcoming  # a first start (nothing to catch up), or the latest slot ran
        late = now_ns - due
        if self.catch_up_ns and late <= self.catch_up_ns:
            return due
        _logger.warning(
            "Loop %r: slots missed since its last run at %s, up to %s, are skipped (older"
            " than catch_up); next run at %s",
            self.loop_name,
            _iso(last),
            _iso(due),
            _iso(upcoming),
        )
        return upcoming

    async def claim(self, slot_ns: int, now_ns: int) -> bool:
        """Whether this process runs ``slot_ns`` (recording it first).

        Args:
            slot_ns: The slot about to run, in epoch ns.
            now_ns: The wall clock now, in epoch ns (for the lease).
        """
        store = self.store
        if not self.exclusive:
            try:
                await store.claim_slot(self.loop_name, slot_ns)
            except StoreError as error:
                self._unrecorded = slot_ns
                _logger.error(
                    "Loop %r: cannot record its run of %s (%s); it runs anyway, keeps its"
                    " schedule and retries the write",
                    self.loop_name,
                    _iso(slot_ns),
                    error,
                )
            else:
                self._unrecorded = None
            return True
        try:
            lease = Lease(self.holder, now_ns, self.lease_ns)
            return await store.claim_slot(self.loop_name, slot_ns, lease)
        except StoreError as error:
            _logger.error(
                "Loop %r: cannot take its lease or claim %s (%s); the slot is skipped so that it"
                " never runs twice, and the loop keeps its schedule",
                self.loop_name,
                _iso(slot_ns),
                error,
            )
            return False

    async def close(self) -> None:
        """At the end of the run: write what is unrecorded, give up the lease, free the name."""
        self.unregister()
        store = self.store
        try:
            if self._unrecorded is not None:
                await store.claim_slot(self.loop_name, self._unrecorded)
                self._unrecorded = None
            if self.exclusive:
                await store.release_lease(self.loop_name, self.holder)
        except StoreError as error:
            _logger.error("Loop %r: cannot update its store at the end (%s)", self.loop_name, error)
