"""Is a thread working, or idle-waiting for new work? Read from its innermost Python frame.

Design decisions:

* **What the frame is calling, not where it is.** A thread blocked in C (a lock, a queue, a
  selector) shows the Python frame that made the call. aiosqlite's connection thread and a
  ``ThreadPoolExecutor`` worker idle and work *in the same function*, at lines that change between
  versions, so the line number says nothing. The instruction at ``f_lasti`` does: it is the call
  being made, and the instructions that share its source position name the callee
  (``tx.get``, ``waiter.acquire``, ``self._selector.poll``). The decision depends only on the code
  object and the instruction offset, so it is computed once and cached. The name alone is not
  enough: a thread computing gives the GIL up where the loop asks, often just back from a call,
  and ``table.get(key)`` or ``", ".join(parts)`` is no wait. Where the instructions show what
  the call is made on (a constant, a variable, attributes read from either), that object is
  looked up without running code, and only the C types that can block count (locks,
  ``SimpleQueue``, thread handles, sockets, selectors); where they do not, the name decides,
  and the kernel is asked (see :func:`may_hide_a_hand_off`).

* **Idle means blocked waiting to be given something**: a lock ``acquire`` (which covers
  ``Condition.wait`` and so ``Event.wait``, ``Queue.get``, ``Semaphore``, ``Future.result`` and
  ``Thread.join`` up to 3.12), a ``join`` (3.13), a ``SimpleQueue.get``, a socket ``accept``, and
  a selector's ``select``/``poll``/``control`` or a ``select.select()`` without a timeout (a
  second event loop with nothing to do). Everything else is working: running Python code,
  ``time.sleep``, ``recv``, a C library computing. A selector or ``select.select()`` polled with
  a timeout is an event loop waiting for its own real-time timer: working. ``select.select()``
  and a poll object's C method take their timeouts positionally, so the instructions before the
  call show where it comes from (no such argument, a constant, a variable, which is read); an
  expression counts as a timeout. A thread whose target is itself such a C method
  (``Thread(target=jobs.get)``), or that calls one kept in an attribute (a virtual loop peeking
  at another's files with ``self._peek(0)``: taken for an idle wait, it let the other loop jump
  past a hand-off about once in 400), shows only the Python frame making the call: the stored
  method is looked up (in the instance ``__dict__``, so no code runs) and decides.

* **The hand-off race.** The loop puts work in a queue or notifies a condition, then reaches its
  own ``select`` before the worker has woken up. A waiter that has already been handed something
  is working: the receiver of the blocking call, when it is a local variable, is inspected (an
  unlocked lock has been released for the waiter; a non-empty ``SimpleQueue`` has work in it).
  A lock's state can mislead: a thread woken in ``Condition.wait`` takes its waiter lock back
  before it waits for the GIL, and from 3.14 a ``_thread.lock`` is a ``PyMutex`` that passes
  straight to a waiter parked for over a millisecond, still locked. For ``Condition.wait``
  (so ``Event.wait``, ``Queue.get``) the condition's waiter list tells: ``notify()`` takes the
  waiter out as it releases it. Python 3.13's ``SimpleQueue`` hands an item straight to a
  parked getter and stays empty, a 3.14 thread in a plain ``acquire`` may hold a lock handed
  over, and on every version a thread just back from either call, or taking a lock in passing,
  still shows the call; an idle event loop is woken through its self-pipe, which leaves its
  frame as it was: for those (:func:`may_hide_a_hand_off`) the frame cannot tell. On
  Linux the kernel can (``_native_threads.parked``): a waiter still parked sleeps in an
  untimed semaphore wait (``futex`` with ``FUTEX_WAIT_BITSET``), one that was handed something
  is runnable (state R) from the moment ``put()`` or ``release()`` returns (an event loop sleeps
  in an untimed I/O wait, and is runnable once its self-pipe is written to), and one woken that
  found the GIL taken waits for its mutex (a plain ``FUTEX_WAIT``) or its condition (a timed
  wait). Where that cannot be read (another system, no ``/proc``, a timed wait), the loop
  pauses briefly, GIL released, and looks again (see ``_in_flight``): a woken worker then runs
  up to its next blocking call first.

* **Never read frames while a subinterpreter runs.** ``sys._current_frames()`` while another
  thread runs code in an isolated subinterpreter (one with its own GIL: anyio's
  ``to_interpreter``, Python 3.14's ``InterpreterPoolExecutor``) corrupts CPython's memory
  (3.12, 3.13: the process aborts with ``free(): invalid pointer``). So the scan first asks
  :func:`subinterpreter_running`; while one runs, the thread running it counts as working
  and no frame is read.
"""

from __future__ import annotations

import _thread
import concurrent.futures.thread
import dis
import gc
import importlib
import queue
import select
import selectors
import socket
import sys
import threading
import types
from typing import Any, Final, TypeAlias

from ._frame_locals import UNREADABLE, read_local

__all__ = (
    "in_wait_for_work",
    "is_idle",
    "may_hide_a_hand_off",
    "other_frames",
    "subinterpreter_running",
    "where",
)

_IDLE_CALLS: Final = frozenset({"acquire", "get", "join", "accept", "select", "poll", "control"})
"""Names of blocking calls that wait for new work (see the module docstring)."""

_INTERPRETER_MODULES: Final = ("_interpreters", "_xxsubinterpreters")
"""The low-level subinterpreter modules of Python 3.13+ and of 3.12."""

_SELECTOR_CALLS: Final = frozenset({"select", "poll", "control"})

_LOCK_TYPES: Final = (_thread.LockType,)

_NO_CALL: Final = (None, None, None)

_NAME_LOADS: Final = (
    "LOAD_ATTR",
    "LOAD_METHOD",
    "LOAD_GLOBAL",
    "LOAD_NAME",
    "LOAD_DEREF",
    "LOAD_FAST",
    "LOAD_SUPER_ATTR",
)
"""Opcode names (and prefixes: ``LOAD_FAST_CHECK``...) that load the callee of a call."""

_GLOBAL: Final = "global "
"""Prefix of a receiver read from the frame's globals (a local name never has a space)."""

CallSite: TypeAlias = tuple[str | None, str | None, tuple[Any, ...] | None]
"""A call: the callee's name, the variable holding its receiver, and how to reach the receiver
(see `_receiver_path`)."""

_call_sites: dict[tuple[types.CodeType, int], CallSite] = {}
"""(code, offset) -> its call site, computed once each."""

_UNKNOWN: Final = object()
"""A receiver the frame cannot tell without running code."""

_MODULE_CALLS: Final = {"select": select}
"""Blocking calls made on a module: ``select.select()``."""

_TIMEOUT_ARGUMENTS: Final = {"select": 3, "poll": 0, "control": 2}
"""Where the timeout of a poll is among its positional arguments: ``select.select(r, w, x,
timeout)``, ``epoll.poll(timeout)`` (``poll.poll``, ``devpoll.poll``),
``kqueue.control(changes, max_events, timeout)``."""

_timeouts: dict[tuple[types.CodeType, int], Any] = {}
"""(code, offset) of a poll -> what gives its timeout (`_timeout_source`)."""


try:
    _SEM_LOCK: object = importlib.import_module("_multiprocessing").SemLock
except (ImportError, AttributeError):  # a build without it (no sem_open)
    _SEM_LOCK = None


def _types(*candidates: object) -> tuple[type, ...]:
    """The candidates that are types (this platform or version may lack some: None)."""
    return tuple(candidate for candidate in candidates if isinstance(candidate, type))


_BLOCKING_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "acquire": _types(
        _thread.LockType,
        _thread.RLock,
        _SEM_LOCK,  # multiprocessing's locks
    ),
    "get": (queue.SimpleQueue,),
    "join": _types(getattr(_thread, "_ThreadHandle", None)),  # 3.13+'s Thread.join waits in it
    "accept": (socket.socket,),
    "poll": _types(
        getattr(select, "epoll", None),
        getattr(select, "devpoll", None),
        type(select.poll()) if hasattr(select, "poll") else None,
    ),
    "control": _types(getattr(select, "kqueue", None)),
}
"""The C types whose method of each blocking name may wait for new work (``Thread.join`` and
``Queue.get`` are Python code: a thread blocked in them shows their own frame)."""


_SNAPSHOT_LOCALS: Final = sys.version_info < (3, 13)
"""Up to 3.12 ``frame.f_locals`` refreshes a dictionary snapshot of the frame's locals (from
3.13 it is a view, PEP 667); see `_variable`."""

_kept: dict[int, tuple[types.FrameType, list[Any]]] = {}
"""id(frame) -> (frame, the values of its locals snapshot at our last read), up to 3.12."""


def _variable(frame: types.FrameType, name: str, default: Any = None) -> Any:
    """The value of a local, free or (``_GLOBAL`` prefix) global variable of ``frame``."""
    if name.startswith(_GLOBAL):
        return frame.f_globals.get(name[len(_GLOBAL) :], default)
    if not _SNAPSHOT_LOCALS:
        return frame.f_locals.get(name, default)
    value = read_local(frame, name, default)
    if value is not UNREADABLE:
        return value
    # Where it cannot (see _frame_locals), through the snapshot. The refresh replaces the
    # snapshot's values, and a value it frees can run Python code (a finalizer, a weakref
    # callback) that gives the GIL away mid-refresh; if the thread then ends, the refresh goes
    # on reading its freed frame: a segmentation fault (aiosqlite connections closed during
    # scans: 20 in one process crashed every run). So the values of our last read are held
    # across the refresh, the collector is off during it, and whatever the refresh replaced is
    # let go afterwards, here.
    held = _kept.get(id(frame))
    collecting = gc.isenabled()
    gc.disable()
    try:
        snapshot = frame.f_locals
    finally:
        if collecting:
            gc.enable()
    _kept[id(frame)] = (frame, list(snapshot.values()))
    del held
    return snapshot.get(name, default)


def _call_site(code: types.CodeType, offset: int) -> CallSite:
    """Name the function called at ``offset`` in ``code``, the local it is called on (if any),
    and the path to its receiver (if the frame can tell it)."""
    instructions = list(dis.get_instructions(code))
    index = next((i for i, ins in enumerate(instructions) if ins.offset == offset), None)
    # (3.11 runs specialised calls of C functions inside PRECALL, so f_lasti may point there.)
    if index is None or not instructions[index].opname.startswith(("CALL", "PRECALL")):
        return _NO_CALL
    call = instructions[index].positions
    if call is None or call.lineno is None:
        return _NO_CALL  # python -X no_debug_ranges: no positions, no decision
    # The loads that build the callee start where the call expression starts; the callee is
    # the one reaching furthest (``tx.get`` in ``tx.get()``), the whole call excepted.
    best: int | None = None
    best_end = (-1, -1)
    for i in range(index - 1, -1, -1):
        ins = instructions[i]
        where = ins.positions
        if where is None or (where.lineno, where.col_offset) != (call.lineno, call.col_offset):
            continue
        end = (where.end_lineno or 0, where.end_col_offset or 0)
        # Only loads of names: 3.13 gives a call's keyword-names constant the callee's span.
        if not ins.opname.startswith(_NAME_LOADS) or end >= (call.end_lineno, call.end_col_offset):
            continue
        if end > best_end:
            best, best_end = i, end
    if best is None or not isinstance(instructions[best].argval, str):
        return _NO_CALL
    callee = instructions[best]
    receiver = None
    if callee.opname in ("LOAD_ATTR", "LOAD_METHOD") and best > 0:
        before = instructions[best - 1]
        if isinstance(before.argval, str):
            if before.opname.startswith("LOAD_FAST") or before.opname == "LOAD_DEREF":
                receiver = before.argval
            elif before.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                receiver = _GLOBAL + before.argval
    return callee.argval, receiver, _receiver_path(instructions, best)


def _receiver_path(instructions: list[dis.Instruction], callee: int) -> tuple[Any, ...] | None:
    """How to reach the object whose method ``instructions[callee]`` loads: ``(base, *names)``,
    the base a constant (``"".join``) or a variable (``_GLOBAL`` prefix for a global) and then
    the attributes read from it (``self._handle.join``); None for anything else."""
    if instructions[callee].opname not in ("LOAD_ATTR", "LOAD_METHOD"):
        return None
    names: list[str] = []
    index = callee - 1
    while index >= 0 and instructions[index].opname == "LOAD_ATTR":
        names.insert(0, instructions[index].argval)
        index -= 1
    if index < 0:
        return None
    base = instructions[index]
    if base.opname.startswith("LOAD_FAST") or base.opname == "LOAD_DEREF":
        # 3.13 fuses two loads of locals into one instruction: the receiver is the second.
        name = base.argval[-1] if isinstance(base.argval, tuple) else base.argval
        return (name, *names) if isinstance(name, str) else None
    if base.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(base.argval, str):
        return (_GLOBAL + base.argval, *names)
    if base.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):
        return (_Constant(base.argval), *names)
    return None


def _timeout_source(code: types.CodeType, offset: int, position: int) -> Any:
    """What gives the timeout of the poll called at ``offset`` in ``code``, its argument at
    ``position``: None when the call stops short of it (the poll waits until a file is ready),
    a `_Constant`, the name of a variable (``_GLOBAL`` prefix for a global), or ``_UNKNOWN``
    (an expression, or not the last argument)."""
    instructions = list(dis.get_instructions(code))
    index = next((i for i, ins in enumerate(instructions) if ins.offset == offset), None)
    if index is not None and instructions[index].opname == "PRECALL":
        index += 1  # 3.11: the call proper follows
    if index is None or index >= len(instructions) or instructions[index].opname != "CALL":
        return _UNKNOWN
    call = instructions[index]
    if call.arg is not None and call.arg <= position:
        return None
    if call.arg != position + 1 or call.is_jump_target:
        return _UNKNOWN  # a conditional expression: the last load need not be its value
    load = instructions[index - 1]
    if load.opname == "PRECALL":
        load = instructions[index - 2]
    name = load.argval[-1] if isinstance(load.argval, tuple) else load.argval
    if load.opname.startswith("LOAD_FAST") or load.opname == "LOAD_DEREF":
        return name if isinstance(name, str) else _UNKNOWN
    if load.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(name, str):
        return _GLOBAL + name
    if load.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):
        return _Constant(load.argval)
    return _UNKNOWN


def _timed_poll(frame: types.FrameType, poll: str) -> bool:
    """Whether the poll ``frame`` makes (a C function whose name, ``poll``, is a key of
    `_TIMEOUT_ARGUMENTS`) has a timeout, as far as its arguments show: a thread polling its
    files with one waits for its own real-time deadline (another event loop's brief poll, a
    peek at another loop's files), so it works. None and a negative number mean no timeout; a
    timeout that cannot be read counts as one."""
    key = (frame.f_code, frame.f_lasti)
    source = _timeouts.get(key, _UNKNOWN)
    if source is _UNKNOWN and key not in _timeouts:
        source = _timeouts[key] = _timeout_source(*key, _TIMEOUT_ARGUMENTS[poll])
    if source is None:
        return False
    if isinstance(source, _Constant):
        value = source.value
    else:
        value = _UNKNOWN if source is _UNKNOWN else _variable(frame, source, _UNKNOWN)
    return value is not None and not (isinstance(value, int | float) and value < 0)


class _Constant:
    """A constant receiver in a receiver path (``""`` in ``"".join``)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _attributes(value: object) -> dict[str, Any] | None:
    """``value``'s own attribute dictionary, read without running its code (no properties, no
    ``__getattr__``), or None."""
    try:
        attributes = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        return None
    return attributes if isinstance(attributes, dict) else None


def _static_attribute(value: object, name: str) -> Any:
    """``value.name`` as Python finds it, looked up without running code: a slot, the object's
    own attribute, or a plain value of its class (``self.table`` where ``table`` is a class
    attribute); ``_UNKNOWN`` where it is missing or reading it would run code (a property)."""
    on_class: Any = _UNKNOWN
    for klass in type(value).__mro__:
        namespace = object.__getattribute__(klass, "__dict__")  # past a metaclass's lookup
        if name in namespace:
            on_class = namespace[name]
            break
    if isinstance(on_class, types.MemberDescriptorType):  # a slot: C code reads it
        try:
            return on_class.__get__(value, type(value))
        except AttributeError:
            return _UNKNOWN
    if on_class is not _UNKNOWN and hasattr(type(on_class), "__set__"):
        return _UNKNOWN  # a property (a data descriptor) comes first, and would run code
    attributes = _attributes(value)
    if attributes is not None and name in attributes:
        return attributes[name]
    if hasattr(type(on_class), "__get__"):
        return _UNKNOWN  # a method or another descriptor: binding it is not a plain read
    return on_class


def _blocking_target(frame: types.FrameType, callee: str, path: tuple[Any, ...] | None) -> Any:
    """What a call named like a blocking one (``callee``, in ``_IDLE_CALLS``) would wait on:
    the lock, queue, thread handle, socket or selector; None when its receiver is known and the
    call cannot block (a dictionary's ``get``, a string's ``join``: a thread caught just back
    from it, as it gives the GIL up there, is working); ``_UNKNOWN`` when the frame cannot tell.
    """
    if path is None:
        return _UNKNOWN
    base, *names = path
    target = base.value if isinstance(base, _Constant) else _variable(frame, base, _UNKNOWN)
    for name in names:
        if target is _UNKNOWN:
            break
        target = _static_attribute(target, name)
    if target is _UNKNOWN:
        return _UNKNOWN
    attributes = _attributes(target)
    method = attributes.get(callee) if attributes is not None else None
    if isinstance(method, types.BuiltinMethodType) and method.__self__ is not None:
        target = method.__self__  # a C method kept on the object: Condition.acquire is its lock's
    if _MODULE_CALLS.get(callee) is target:
        return target
    return target if isinstance(target, _BLOCKING_TYPES.get(callee, ())) else None


def _handed_work(value: object) -> bool:
    """Whether the object a thread is blocked on already holds something for it."""
    if isinstance(value, _LOCK_TYPES):
        return not value.locked()
    if isinstance(value, queue.SimpleQueue):
        return not value.empty()
    return False


def _bound_builtin(frame: types.FrameType, receiver: str, name: str) -> Any:
    """The C method ``receiver.name`` holds in ``frame`` (``Thread.run`` calling its target)."""
    holder = _variable(frame, receiver)
    attributes = getattr(holder, "__dict__", None)  # no properties: reading must not run code
    method = attributes.get(name) if isinstance(attributes, dict) else None
    return method if isinstance(method, types.BuiltinMethodType) else None


_CONDITION_WAIT: Final = threading.Condition.wait.__code__


def _notified(frame: types.FrameType) -> bool:
    """Whether a thread in ``Condition.wait`` was notified: its waiter lock is no longer in the
    condition's list (``notify()`` takes it out as it releases it). The lock's own state can
    hide that: the woken thread may hold it already while it waits for the GIL, and from 3.14
    the release passes it on still locked."""
    waiters = getattr(_variable(frame, "self"), "_waiters", None)
    waiter = _variable(frame, "waiter")
    return waiters is not None and waiter is not None and waiter not in waiters


def _site(frame: types.FrameType) -> CallSite:
    """The call ``frame`` is making (see `_call_site`), computed once per code and offset."""
    key = (frame.f_code, frame.f_lasti)
    site = _call_sites.get(key)
    if site is None:
        site = _call_sites[key] = _call_site(*key)
    return site


def is_idle(frame: types.FrameType) -> bool:
    """Whether the thread whose innermost Python frame is ``frame`` waits for new work."""
    callee, receiver, path = _site(frame)
    if callee is None:
        return False
    if callee not in _IDLE_CALLS:
        if receiver is None:
            return False
        # A stored C callable, such as Thread(target=queue.get): what it is decides.
        method = _bound_builtin(frame, receiver, callee)
        if method is None or method.__name__ not in _IDLE_CALLS:
            return False
        if method.__name__ in _SELECTOR_CALLS and _timed_poll(frame, method.__name__):
            return False
        return not _handed_work(method.__self__)
    target = _blocking_target(frame, callee, path)
    if target is None or _handed_work(target):
        return False
    if frame.f_code is _CONDITION_WAIT and _notified(frame):
        return False
    if callee in _SELECTOR_CALLS and isinstance(_variable(frame, "self"), selectors.BaseSelector):
        timeout = _variable(frame, "timeout")
        if isinstance(timeout, int | float) and timeout > 0:
            return False  # an event loop waiting for its own timer
    if callee == "select" and _selects_files(frame, target, path):
        return not _timed_poll(frame, "select")
    return True


def _selects_files(frame: types.FrameType, target: Any, path: tuple[Any, ...] | None) -> bool:
    """Whether a call named ``select`` is ``select.select()``: made on the module, or on the
    function imported under its own name."""
    if target is select:
        return True
    return path is None and frame.f_globals.get("select") is select.select


def in_wait_for_work(frame: types.FrameType) -> bool:
    """Whether the thread whose innermost Python frame is ``frame`` is in a call that waits to be
    given work (a queue's ``get``, ``Condition.wait``, ``accept``, ``join``), whether or not it
    has been handed some already: it has paused between two pieces of work. A plain lock
    ``acquire`` is not such a pause (a thread takes locks in passing while it works: logging's),
    nor is a selector's poll (an event loop waiting for its own timer works)."""
    if frame.f_code is _CONDITION_WAIT:
        return True
    callee, receiver, path = _site(frame)
    if callee in _WORK_WAITS:
        return _blocking_target(frame, callee, path) is not None
    if callee is None or callee in _IDLE_CALLS or receiver is None:
        return False
    method = _bound_builtin(frame, receiver, callee)  # Thread(target=queue.get)
    return method is not None and method.__name__ in _WORK_WAITS


_WORK_WAITS: Final = frozenset({"get", "accept", "join"})
"""The calls of _IDLE_CALLS that only a thread between two pieces of work makes."""


_EXECUTOR_WORKER: Final[types.CodeType | None] = getattr(
    getattr(concurrent.futures.thread, "_worker", None), "__code__", None
)
"""A ``ThreadPoolExecutor`` worker's loop: the work an event loop hands it comes through
``run_in_executor()``, which the loop counts from the call on."""


def may_hide_a_hand_off(frame: types.FrameType) -> bool:
    """Whether an idle-looking thread may already have been handed work that left no trace: one
    in ``SimpleQueue.get`` or a plain lock ``acquire``. From 3.13 a ``SimpleQueue`` hands an item
    straight to a parked getter and stays empty, and from 3.14 a ``_thread.lock`` is a
    ``PyMutex`` that passes, still locked, to a thread that has waited for it more than a
    millisecond. And on every version a thread just back from the call still shows it until its
    next instruction: if it gives the GIL up right there (another thread asked for it), its
    queue is empty again, or its lock locked again, by itself. Likewise a call of a blocking
    name on something the frame cannot show (``items[0].get()``): only the kernel tells a wait
    from a computation just back from a dictionary's ``get``.
    """
    if frame.f_code in (_EXECUTOR_WORKER, _CONDITION_WAIT):
        return False  # an executor's work is counted; a condition's waiter list tells
    callee, receiver, path = _call_sites.get((frame.f_code, frame.f_lasti), _NO_CALL)
    if callee in _SELECTOR_CALLS:
        # An event loop in another thread with nothing to do: call_soon_threadsafe() wakes it
        # through its self-pipe, which leaves the frame as it was (a hand-off with
        # run_coroutine_threadsafe() was jumped past in 3 of 4 tries).
        return True
    if callee == "acquire":
        # Any lock: a mutex taken in passing (logging's module lock, an RLock) looks the same.
        return True
    if receiver is None:
        # Only a receiver reached otherwise (attributes, a subscript) can be unknown: a local or
        # global one is read as it is (below).
        return callee in _WORK_WAITS and _blocking_target(frame, callee, path) is _UNKNOWN
    if callee == "get":
        return isinstance(_variable(frame, receiver), queue.SimpleQueue)
    method = _bound_builtin(frame, receiver, callee or "")  # Thread(target=queue.get)
    return method is not None and isinstance(method.__self__, (queue.SimpleQueue, *_LOCK_TYPES))


def other_frames() -> dict[int, types.FrameType]:
    """``sys._current_frames()`` without the caller's own frame.

    Kept, that frame would hold the dictionary (a local of the caller) that holds it: a cycle
    that keeps every scanned frame of every thread alive until the garbage collector runs.
    Drops the locals kept for frames no longer current (see `_variable`).
    """
    frames = sys._current_frames()
    del frames[threading.get_ident()]
    if _kept:
        current = {id(frame) for frame in frames.values()}
        for key in _kept.keys() - current:
            del _kept[key]  # that frame is done: its thread moved on, or ended
    return frames


def where(frame: types.FrameType) -> str:
    """Describe a frame as ``function() at file:line``."""
    return f"{frame.f_code.co_qualname}() at {frame.f_code.co_filename}:{frame.f_lineno}"


def subinterpreter_running() -> bool:
    """Whether any thread runs code in a subinterpreter now (see the module docstring).

    Costs a dictionary lookup until the program has imported the subinterpreter module.
    """
    for name in _INTERPRETER_MODULES:
        module: Any = sys.modules.get(name)
        if module is None:
            continue
        main = _interpreter_id(module.get_main())
        for entry in module.list_all():
            interpreter = _interpreter_id(entry)
            if interpreter == main:
                continue
            try:
                if module.is_running(interpreter):
                    return True
            except Exception:  # destroyed since list_all(): not running
                continue
    return False


def _interpreter_id(entry: Any) -> int:
    """An interpreter's number from ``list_all()``/``get_main()``: (id, whence) on 3.13+."""
    return int(entry[0] if isinstance(entry, tuple) else entry)
