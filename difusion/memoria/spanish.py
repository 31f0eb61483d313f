"""Numbers, percentages, sizes and dates as a Mexican reader writes them (Babel, es_MX)."""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent

LOCALE = "es_MX"


def number(value: float) -> str:
    """``1234567`` → ``1,234,567``; fractions keep up to two decimals."""
    return format_decimal(round(value, 2), locale=LOCALE)


def percent(ratio: float) -> str:
    return format_percent(ratio, "#,##0.0 %", locale=LOCALE)


def size(count: float) -> str:
    """Bytes in decimal units: ``7891922812`` → ``7.9 GB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{format_decimal(round(count / scale, 1), '#,##0.0', locale=LOCALE)} {unit}"
    return f"{number(count)} B"


def day(value: date) -> str:
    """``domingo 2 de junio de 2024``."""
    return format_date(value, "EEEE d 'de' MMMM 'de' y", locale=LOCALE)


def short_day(value: date) -> str:
    """``dom 2 jun``."""
    return format_date(value, "EEE d MMM", locale=LOCALE).replace(".", "")


def moment(value: datetime) -> str:
    """``2 de junio de 2024, 20:05`` (local time, no zone shown)."""
    return format_datetime(value, "d 'de' MMMM 'de' y, HH:mm", locale=LOCALE)


def span(first: date, last: date) -> str:
    """``del 1 al 10 de junio de 2024``; months and years named only when they change; ``del 2
    de junio de 2024`` for one day."""
    whole = "d 'de' MMMM 'de' y"
    end = format_date(last, whole, locale=LOCALE)
    if first == last:
        return f"del {end}"
    if (first.year, first.month) == (last.year, last.month):
        return f"del {first.day} al {end}"
    start_format = "d 'de' MMMM" if first.year == last.year else whole
    return f"del {format_date(first, start_format, locale=LOCALE)} al {end}"
