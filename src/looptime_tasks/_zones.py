"""Time zones for timelines: zone names, local midnights, UTC offsets and DST changes.

Pure calendar arithmetic on aware datetimes (no event loop, no clock): the model finds the DST
changes of a window with `offset_changes`, the renderings name zones and offsets with
`zone_name` and `format_offset`.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = (
    "DstChange",
    "as_zone",
    "format_offset",
    "midnight",
    "offset_changes",
    "parse_zone",
    "zone_name",
)


def parse_zone(name: str) -> tzinfo:
    """The zone of that IANA name (``UTC``, ``Europe/London``…).

    Raises:
        ValueError: If no such zone exists.
    """
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/London"
        ) from None


def as_zone(tz: object) -> tzinfo:
    """A timeline method's ``tz``: a ``tzinfo``, or an IANA name as ``loop(tz=...)`` takes.

    Raises:
        TypeError: If *tz* is neither.
        ValueError: If *tz* names no zone.
    """
    if isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, str):
        try:
            return parse_zone(tz)
        except ValueError as exc:
            raise ValueError(f"tz: {exc}") from None
    raise TypeError(
        "tz must be a datetime.tzinfo (such as a zoneinfo.ZoneInfo) or an IANA zone name such"
        f" as 'Europe/London' (got {tz!r})."
    )


def zone_name(zone: tzinfo) -> str:
    """A zone's name: its IANA key, else what `str` says (``UTC``, ``UTC+09:00``)."""
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else str(zone)


def midnight(day: date, tz: tzinfo) -> datetime:
    """The instant (UTC) the local date *day* begins in *tz*."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def format_offset(offset: timedelta) -> str:
    """A UTC offset as ``UTC+01:00``."""
    total = int(offset.total_seconds())
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


@dataclasses.dataclass(frozen=True, slots=True)
class DstChange:
    """A change of a time zone's UTC offset (a daylight saving time transition).

    Attributes:
        zone: The zone's name (its IANA key).
        at: The instant of the change (aware, UTC).
        before: The UTC offset before the change.
        after: The UTC offset after the change.
        tz: The zone itself.
    """

    zone: str
    at: datetime
    before: timedelta
    after: timedelta
    tz: tzinfo

    def __str__(self) -> str:
        direction = "forward" if self.after > self.before else "back"
        old = (self.at + self.before).replace(tzinfo=None)
        new = (self.at + self.after).replace(tzinfo=None)
        before = (self.at - timedelta(seconds=1)).astimezone(self.tz)
        old_name = before.tzname() or format_offset(self.before)
        new_name = self.at.astimezone(self.tz).tzname() or format_offset(self.after)
        return (
            f"{self.zone} clocks go {direction}: {old:%H:%M} {old_name} -> {new:%H:%M} "
            f"{new_name} at {self.at:%Y-%m-%d %H:%M} UTC"
        )


def offset_changes(name: str, zone: tzinfo, start: datetime, end: datetime) -> list[DstChange]:
    """The instants in [start, end) where *zone*'s UTC offset changes, to the second."""
    step = timedelta(hours=6)
    changes: list[DstChange] = []

    def offset(at: datetime) -> timedelta:
        return at.astimezone(zone).utcoffset() or timedelta(0)

    previous, previous_offset = start, offset(start)
    while previous < end:
        following = min(previous + step, end)
        following_offset = offset(following)
        if following_offset != previous_offset:
            low, high = previous, following  # offset(low) is old, offset(high) is new
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    middle = low + timedelta(seconds=1)
                if offset(middle) == previous_offset:
                    low = middle
                else:
                    high = middle
            if start <= high < end:
                changes.append(DstChange(name, high, previous_offset, offset(high), zone))
        previous, previous_offset = following, following_offset
    return changes
