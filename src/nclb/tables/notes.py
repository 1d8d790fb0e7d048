"""A table's note, filled from its own rows: the note states no number the rows do not give.

A grid's `note` is plain text (said of every model, so it must hold no measured number), or a
mapping with a part for every model (`all`) and one per model kind (`tiny`, `llada`, `dream`);
each part is a string or a list of sentences, a sentence a string or `{text, check}` (check:
one claim or a list):

    note:
      all: Tiny rows are the reasoning task chain.
      tiny:
        - text: "MED keeps k=1's accuracy ({chain:MED lam=0.2.accuracy}%) at
                 {chain:k=1.nfe / chain:MED lam=0.2.nfe} fewer passes."
          check: "chain:MED lam=0.2 ~ chain:k=1"

A field `{ROW.FIELD}` is a number of one row: ROW is `[GROUP:]LABEL` (GROUP, the row's task,
is needed when the label is in more than one group), FIELD one of FIELDS or a metric column.
`{A - B}` and `{A / B}` (B a field or a number) compute a difference or a ratio (ratios read
`2.34x`); `|FORMAT` sets the format (`{A - B|.0f}`). `{paper:TABLE/MODEL/TASK/SETTING.FIELD}`
is the paper's number (src/nclb/tables/paper.yaml). `{{` and `}}` are literal braces.

A `check` is a claim about the rows, tested when the table is built: `A OP B` with OP one of
>=, <=, >, < (A, B as in a field) or `A ~ B` / `A !~ B` (the two rows' 95% accuracy intervals
overlap / do not). A sentence whose check fails, or whose rows are missing, is replaced by a
WARNING line saying so, and the warning is logged.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from nclb.errors import UserError
from nclb.tables.build import paper_numbers

FIELDS = {
    "accuracy": ("accuracy", ".1f"),
    "ci_low": ("ci_low", ".1f"),
    "ci_high": ("ci_high", ".1f"),
    "nfe": ("mean_nfe", ".1f"),
    "speedup": ("speedup", ".2f"),
    "n": ("n", "d"),
    "exit_rate": ("exit_rate", ".2f"),
}
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")
OPERATORS = (" - ", " / ", " + ")
COMPARISONS = (" >= ", " <= ", " !~ ", " ~ ", " > ", " < ")


class Unsupported(Exception):
    """A note sentence whose rows are missing from the table (not an error of the grid)."""


def note_parts(note: Any, model_kind: str) -> list[dict[str, str]]:
    """The sentences of a grid note for one model kind, each as {text, check}."""
    if note is None or note == "":
        return []
    if isinstance(note, str):
        return [{"text": note}]
    if not isinstance(note, dict) or set(note) - {"all", "tiny", "llada", "dream"}:
        raise UserError("a grid note is a string or a mapping of all/tiny/llada/dream to sentences")
    parts = []
    for key in ("all", model_kind):
        items = note.get(key) or []
        for item in [items] if isinstance(items, str) else items:
            item = {"text": item} if isinstance(item, str) else dict(item)
            if set(item) - {"text", "check"} or "text" not in item:
                raise UserError(f"a grid note sentence has text and optional check: {item}")
            parts.append(item)
    return parts


def note_texts(note: Any) -> list[str]:
    """Every sentence of a grid note, for every model kind (for checks of the grid files)."""
    return [p["text"] for kind in ("tiny", "llada", "dream") for p in note_parts(note, kind)]


class RowIndex:
    """Rows of a table looked up by `[GROUP:]LABEL` (group: the task column)."""

    def __init__(self, frame: pd.DataFrame | None, group: str = "task", label: str = "setting"):
        self.rows: dict[tuple[str, str], pd.Series] = {}
        self.groups: dict[str, set[str]] = {}
        if frame is None or frame.empty:
            return
        order = frame.sort_values("in_table", ascending=False) if "in_table" in frame else frame
        for _, row in order.iterrows():
            key = (str(row[group]), str(row[label]))
            self.rows.setdefault(key, row)
            self.groups.setdefault(key[1], set()).add(key[0])

    def row(self, ref: str) -> pd.Series:
        """The row `[GROUP:]LABEL`; Unsupported when the table has none."""
        group, sep, label = ref.partition(":")
        if not sep:
            label, found = ref, self.groups.get(ref, set())
            if len(found) > 1:
                raise UserError(
                    f"note field {ref!r} is in groups {sorted(found)}: write GROUP:{ref}"
                )
            if not found:
                raise Unsupported(f"the table has no row {ref!r}")
            group = next(iter(found))
        if (group, label) not in self.rows:
            raise Unsupported(f"the table has no row {label!r} in {group}")
        return self.rows[(group, label)]


def field_value(ref: str, rows: RowIndex) -> tuple[float, str]:
    """(value, default format) of `ROW.FIELD`, `paper:...FIELD` or a number literal."""
    try:
        return float(ref), "g"
    except ValueError:
        pass
    where, dot, name = ref.rpartition(".")
    if not dot:
        raise UserError(f"note field {ref!r} needs the form ROW.FIELD")
    if where.startswith("paper:"):
        keys = where[len("paper:") :].split("/")
        if len(keys) != 4:
            raise UserError(f"note field {ref!r}: write paper:TABLE/MODEL/TASK/SETTING.FIELD")
        entry: Any = paper_numbers()
        for key in keys:
            entry = (entry or {}).get(key) if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or entry.get(name) is None:
            raise UserError(f"note field {ref!r}: paper.yaml has no such number")
        return float(entry[name]), ".1f"
    row = rows.row(where)
    column, form = FIELDS.get(name, (name, ".4f"))
    if column not in row.index:
        raise UserError(f"note field {ref!r}: {name!r} is not one of {sorted(FIELDS)}")
    value = row[column]
    if value is None or pd.isna(value):
        raise Unsupported(f"row {where!r} has no {name}")
    return float(value), form


def evaluate(expr: str, rows: RowIndex) -> tuple[float, str]:
    """(value, default format) of `A`, `A - B`, `A + B` or `A / B` (a ratio: format `.2fx`)."""
    for op in OPERATORS:
        if op in expr:
            left, right = (part.strip() for part in expr.split(op, 1))
            (a, form), (b, _) = field_value(left, rows), field_value(right, rows)
            if op == " / ":
                if b == 0:
                    raise Unsupported(f"{right} is zero")
                return a / b, ".2fx"
            return (a - b if op == " - " else a + b), form
    return field_value(expr.strip(), rows)


def formatted(value: float, form: str) -> str:
    """A value in a format of FIELDS, `.Nfx` (a ratio) or a format spec."""
    suffix = "x" if form.endswith("x") else ""
    spec = form.removesuffix("x")
    if spec == "d":
        return f"{round(value):d}"
    return f"{value:{spec}}{suffix}"


def fill(text: str, rows: RowIndex) -> str:
    """The sentence with every `{FIELD}` replaced by its value."""

    def one(match: re.Match) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        expr, _, form = match.group(1).partition("|")
        value, default = evaluate(expr, rows)
        return formatted(value, form.strip() or default)

    return PLACEHOLDER.sub(one, text)


def holds(check: str, rows: RowIndex) -> bool:
    """Whether the rows support a claim `A OP B` (see the module docstring)."""
    for op in COMPARISONS:
        if op in check:
            left, right = (part.strip() for part in check.split(op, 1))
            break
    else:
        raise UserError(f"note check {check!r} needs one of {[c.strip() for c in COMPARISONS]}")
    if op.strip() in ("~", "!~"):
        a, b = rows.row(left), rows.row(right)
        overlap = not (a.ci_low > b.ci_high or b.ci_low > a.ci_high)
        return overlap if op.strip() == "~" else not overlap
    a, b = evaluate(left, rows)[0], evaluate(right, rows)[0]
    return {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op.strip()]


def render_note(
    note: Any, model_kind: str, frame: pd.DataFrame | None = None, log=print, group: str = "task"
) -> str:
    """A grid note for one model kind with its fields filled from `frame` (one paragraph per
    sentence list item joined by spaces); unsupported claims become WARNING lines."""
    rows = RowIndex(frame, group=group)
    out: list[str] = []
    warnings: list[str] = []
    for part in note_parts(note, model_kind):
        text = " ".join(part["text"].split())
        try:
            filled = fill(text, rows)
            checks = part.get("check") or []
            failed = [
                c for c in ([checks] if isinstance(checks, str) else checks) if not holds(c, rows)
            ]
            if failed:
                warnings.append(
                    f"WARNING: these rows no longer support the note's claim "
                    f"({'; '.join(failed)}); left out: {filled}"
                )
                continue
        except Unsupported as why:
            warnings.append(f"WARNING: a sentence of the note was left out ({why}): {text}")
            continue
        out.append(filled)
    for line in warnings:
        log(line)
    return "\n\n".join([" ".join(out), *warnings]).strip()
