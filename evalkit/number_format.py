"""Numbers as text for people: the one rule every report, table and sentence formats a number with.

A difference of 4e-7 printed with four decimals reads ``-0.0000``, i.e. "no difference", beside a sentence
that calls it worse. :func:`format_number` keeps the usual decimals and adds places for small values until
``significant`` digits show, so a non-zero number never prints as zero, and an exact zero prints as ``0``
with the usual decimals and no sign. Shared by the stats sentences and the report renderers (it imports
nothing), so a table and the sentence above it print a number alike.
"""

from __future__ import annotations

import math

__all__ = ["MAX_FIXED_PLACES", "format_number"]

#: Most decimal places in fixed notation; a smaller magnitude (below about 1e-11) is printed as ``4.0e-13``.
MAX_FIXED_PLACES: int = 12


def format_number(
    value: float, decimals: int, unit: str = "", *, signed: bool = False, significant: int = 2
) -> str:
    """``value`` with at least ``decimals`` places and at least ``significant`` significant digits.

    Parameters
    ----------
    value : float
        The number; NaN or an infinity gives ``"n/a"``.
    decimals : int
        Places always shown (the metric registry's ``Metric.decimals``), >= 0.
    unit : str
        Appended as given, e.g. ``" dB"``.
    signed : bool
        Prefix ``+`` to a positive value (a difference); a negative value always has its ``-``.
    significant : int
        Significant digits a small value gains places for, >= 1: with 4 decimals and 2 digits, ``0.0123``
        prints as ``0.0123`` and ``-4.04e-7`` as ``-0.00000040``.

    Returns
    -------
    str
        E.g. ``"+0.0123 dB"``, ``"-0.00000040"``, ``"0.0000"`` for an exact zero (no sign: a zero has none),
        ``"-4.0e-13"`` below :data:`MAX_FIXED_PLACES` places. A non-zero value never reads as zero, and the
        text parses back (``float``, unit removed) to ``value`` within half a unit of its last place.
    """
    if decimals < 0 or significant < 1:
        raise ValueError(
            f"format_number: decimals must be >= 0 and significant >= 1, got {decimals} and {significant}"
        )
    if not math.isfinite(value):
        return "n/a"
    if value == 0.0:  # also -0.0
        return f"{0.0:.{decimals}f}{unit}"
    magnitude = abs(value)
    places = max(decimals, significant - 1 - math.floor(math.log10(magnitude)))
    if places > MAX_FIXED_PLACES:
        text = f"{magnitude:.{significant - 1}e}"
    else:
        text = f"{magnitude:.{places}f}"
    sign = "-" if value < 0 else ("+" if signed else "")
    return f"{sign}{text}{unit}"
