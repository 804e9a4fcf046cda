"""Read one local variable of another thread's running frame without keeping it alive.

Design decisions:

* **Why not ``frame.f_locals``.** Up to Python 3.12, ``f_locals`` of a running function's frame
  is a dictionary snapshot stored on the frame: reading it copies every local in, and the
  copies stay until the next read or until the frame ends. A look at a worker thread blocked
  between two jobs so kept the previous job's objects alive (aiosqlite's cursor, and with it
  an SQLite statement: a ``DROP TABLE`` then failed with "database table is locked", in up to 2
  of 3 runs of aiosqlite's own test on a busy machine). From 3.13, ``f_locals`` is a view
  (PEP 667) that copies nothing, and this module is not used.
* **3.12: ``PyFrame_GetVar``**, the C API's own reader of one variable (cells included), which
  copies nothing into the frame.
* **3.11: the frame's own slots.** 3.11 has no such call. Its frames keep their locals in an
  array after a fixed header (``_PyInterpreterFrame``), in the order the code itself maps
  (``_varname_from_oparg``, what ``dis`` shows). Internals, so first checked: the header must
  hold this very frame's code, globals and frame object, where 3.11's layout puts them. Any
  other build (a debug build, a layout not seen) fails the check and reads nothing
  (:data:`UNREADABLE`), and the caller falls back to ``f_locals``.
* **Under the GIL, no code run.** The reads are plain memory reads and ``PyDLL`` calls, which
  keep the GIL: the thread that owns the frame cannot run meanwhile, so its slots do not
  change under the read.
"""

from __future__ import annotations

import struct
import sys
import types
from typing import Any, Final

try:
    import ctypes
except ImportError:  # a Python built without it: f_locals it is
    _CPYTHON = False
else:
    _CPYTHON = sys.implementation.name == "cpython"

__all__ = ("UNREADABLE", "read_local")

UNREADABLE: Final = object()
"""What :func:`read_local` returns where it cannot read this Python's frames."""

_MISSING: Final = object()

_POINTER: Final = struct.calcsize("P")
_FRAME_SLOT: Final = 2 * _POINTER + _POINTER  # PyObject_HEAD, then f_back, then f_frame
"""Offset of ``PyFrameObject.f_frame`` (3.11, 3.12; a release build)."""

# 3.11's _PyInterpreterFrame: f_func, f_globals, f_builtins, f_locals, f_code, frame_obj,
# previous, prev_instr (pointers), stacktop (int), is_entry (bool), owner (char), localsplus.
_GLOBALS_311: Final = 1 * _POINTER
_CODE_311: Final = 4 * _POINTER
_FRAME_OBJECT_311: Final = 5 * _POINTER
_LOCALS_311: Final = 8 * _POINTER + 8

_slots: dict[types.CodeType, dict[str, int]] = {}
"""code -> its variables' slot indexes (3.11)."""


def _get_var() -> Any:
    """``PyFrame_GetVar`` as a ctypes function, where this Python has it (3.12+)."""
    function = getattr(ctypes.pythonapi, "PyFrame_GetVar", None)
    if function is None:
        return None
    function.restype = ctypes.py_object
    function.argtypes = (ctypes.py_object, ctypes.py_object)
    return function


_GET_VAR: Final = _get_var() if _CPYTHON and sys.version_info >= (3, 12) else None


def read_local(frame: types.FrameType, name: str, default: Any = None) -> Any:
    """The value of the local, cell or free variable ``name`` of the running ``frame``, or
    ``default`` if it has none or it is unbound; :data:`UNREADABLE` where this Python's frames
    cannot be read so (see the module docstring)."""
    if _GET_VAR is not None:
        try:
            return _GET_VAR(frame, name)
        except NameError:  # no such variable, or unbound
            return default
    if not _CPYTHON or sys.version_info[:2] != (3, 11):
        return UNREADABLE
    value = _read_slot(frame, name)
    if value is UNREADABLE or value is _MISSING:
        return default if value is _MISSING else UNREADABLE
    code = frame.f_code
    if isinstance(value, types.CellType) and (name in code.co_cellvars or name in code.co_freevars):
        try:
            return value.cell_contents
        except ValueError:  # an empty cell: unbound
            return default
    return value


def _read_slot(frame: types.FrameType, name: str) -> Any:
    """The object in the slot of ``name`` in 3.11's ``frame`` (a cell for a cell variable),
    ``_MISSING`` if it has no such slot or the slot is empty, or ``UNREADABLE``."""
    code = frame.f_code
    slots = _slots.get(code)
    if slots is None:
        slots = _slots[code] = _slot_indexes(code)
    index = slots.get(name)
    if index is None:
        return _MISSING
    address = ctypes.c_void_p.from_address(id(frame) + _FRAME_SLOT).value
    if (
        address is None
        or ctypes.c_void_p.from_address(address + _CODE_311).value != id(code)
        or ctypes.c_void_p.from_address(address + _GLOBALS_311).value != id(frame.f_globals)
        or ctypes.c_void_p.from_address(address + _FRAME_OBJECT_311).value != id(frame)
    ):
        return UNREADABLE
    slot = address + _LOCALS_311 + index * _POINTER
    if not ctypes.c_void_p.from_address(slot).value:
        return _MISSING
    return ctypes.py_object.from_address(slot).value


def _slot_indexes(code: types.CodeType) -> dict[str, int]:
    """Where each variable of ``code`` lives among 3.11's frame slots, as the code itself maps
    them (what ``dis`` shows for ``LOAD_FAST`` and ``LOAD_DEREF``)."""
    count = len(set(code.co_varnames) | set(code.co_cellvars)) + len(code.co_freevars)
    name_of = code._varname_from_oparg  # type: ignore[attr-defined]  # 3.11+, not in typeshed
    return {name_of(index): index for index in range(count)}
