"""Report periods: whole local days in the Centre's time zone, turned into UTC bounds for the queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MONTHS_RU = (
    "январь", "февраль", "март", "апрель", "май", "июнь",
    "июль", "август", "сентябрь", "октябрь", "ноябрь", "декабрь",
)  # fmt: skip


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """From `first` to `last`, both included, as calendar days in `timezone`."""

    first: date
    last: date
    timezone: str = "Asia/Tashkent"

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the period ends ({self.last}) before it starts ({self.first})")

    @classmethod
    def month(cls, value: str, timezone: str = "Asia/Tashkent") -> Period:
        """`2026-10` → 1–31 October 2026."""
        try:
            year, month = (int(part) for part in value.split("-"))
            first = date(year, month, 1)
        except ValueError:
            raise ValueError(f"expected a month as YYYY-MM, got {value!r}") from None
        return cls(first, add_months(first, 1) - timedelta(days=1), timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_month(self) -> bool:
        return self.first.day == 1 and self.last == add_months(self.first, 1) - timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def local_start(self, day: date) -> datetime:
        """Midnight starting `day` in the Centre's zone, in UTC (each day converted itself: DST-correct)."""
        return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self.local_start(self.first)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return self.local_start(self.last + timedelta(days=1))

    def previous(self) -> Period:
        """The month before a month; otherwise the same number of days just before."""
        if self.is_month:
            first = add_months(self.first, -1)
            return Period(first, self.first - timedelta(days=1), self.timezone)
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.timezone)

    def months(self) -> list[date]:
        """First days of the calendar months the period touches."""
        out, month = [], self.first.replace(day=1)
        while month <= self.last:
            out.append(month)
            month = add_months(month, 1)
        return out

    def trend_months(self, at_least: int = 12) -> list[date]:
        """Months for the "by month" chart: the period's own, or the last `at_least` up to its end."""
        months = self.months()
        if len(months) >= at_least:
            return months
        return [add_months(months[-1], -k) for k in range(at_least - 1, -1, -1)]

    def label(self, language: str = "en") -> str:
        if self.is_month:
            names = MONTHS_RU if language == "ru" else MONTHS_EN
            return f"{names[self.first.month - 1]} {self.first.year}"
        return f"{self.first.isoformat()} – {self.last.isoformat()}"

    @property
    def key(self) -> str:
        if self.is_month:
            return self.first.strftime("%Y-%m")
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def month_label(month: date, language: str = "en", short: bool = True) -> str:
    names = MONTHS_RU if language == "ru" else MONTHS_EN
    name = names[month.month - 1]
    return f"{name[:3]} {month.year}" if short else f"{name} {month.year}"
