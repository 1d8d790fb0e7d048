"""Whether a table's rows resolve a difference: for a metric with a `contrast` spec, compare
two rows of each model/task group and say plainly when the difference is inside the noise.

Grid spec (under one of `metrics:`), e.g. Table 6's:

    contrast: {rows: ["k=2", "MED lam=0.2"], fraction: 0.25}

The difference counts as resolved when every row of the group has a standard error below
`fraction` x |value(second row) - value(first row)|.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def finite(value: Any) -> float | None:
    """`value` as a float, None where it is missing or not finite."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def group_note(group: pd.DataFrame, metric: dict[str, Any], where: str) -> str | None:
    """The sentence for one model/task group (None when it lacks one of the two rows)."""
    spec = metric["contrast"]
    first, second = spec["rows"]
    fraction = float(spec.get("fraction", 0.25))
    column, stderr = metric["column"], f"{metric['column']}_stderr"
    name = spec.get("name", metric.get("header", column))
    rows = {label: row for label, row in zip(group.setting, group.itertuples(index=False))}
    if first not in rows or second not in rows:
        return None
    a, b = finite(getattr(rows[first], column)), finite(getattr(rows[second], column))
    if a is None or b is None:
        return f"{where}: {name} is missing for {first} or {second}; no comparison."
    diff = a - b
    limit = fraction * abs(diff)
    errors = {label: finite(getattr(row, stderr, None)) for label, row in rows.items()}
    noisy = [label for label, se in errors.items() if se is None or se >= limit]
    head = f"{where}: {name} of {first} minus {second} = {diff:+.4f} nats"
    if not noisy:
        return (
            f"{head}; every row's standard error is below {fraction:g} x that difference "
            f"({limit:.4f}), so the rows resolve it."
        )
    return (
        f"{head}, INSIDE THE NOISE: the standard error of {', '.join(noisy)} is not below "
        f"{fraction:g} x that difference ({limit:.4f}); more examples are needed to tell "
        f"{first} from {second}."
    )


def contrast_notes(table: pd.DataFrame) -> list[str]:
    """One sentence per model/task group for each metric of the table with a `contrast`."""
    notes = []
    for metric in table.attrs.get("metrics", []):
        if not metric.get("contrast"):
            continue
        for (model, task), group in table.groupby(["model", "task"], sort=False):
            note = group_note(group, metric, f"{model} {task}")
            if note:
                notes.append(note)
    return notes
