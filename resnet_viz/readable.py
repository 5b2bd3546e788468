"""Numbers for people: counts of parameters and operations ("269.72K", "25.56M") and sizes in bytes ("1.5 MB").

No torch, no plotly: the figures, the CLI and the error messages all format here, so they agree."""
from __future__ import annotations


def human_count(n: float, thousands_decimals: int = 2) -> str:
    """269_720 -> "269.72K", 25_557_032 -> "25.56M", 4.1e9 -> "4.10G": two decimals after K, M or G (the sign kept);
    below a thousand, the whole number. `thousands_decimals` sets the decimals after K alone: the CLI's summary has
    always printed one ("269.7K")."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{thousands_decimals if unit == 'K' else 2}f}{unit}"
    return f"{int(n)}"


def human_bytes(n: int | None) -> str:
    """2_500_000 -> "2.4 MB" (binary units, one decimal); None -> "?"."""
    if n is None:
        return "?"
    for unit, scale in (("GB", 2 ** 30), ("MB", 2 ** 20), ("kB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"
