"""Run-level summary of the per-example verdicts a scorer records (docs/scoring.md).

Scorers put `strict_correct`, `lenient_correct` and `verdict` (which of the two `correct` is) in a
record's detail, and HumanEval the sandbox mode (`sandbox`). `verdict_summary` turns them into
summary keys: `accuracy_strict`, `accuracy_lenient`, `verdict` and `sandbox`.
"""

from __future__ import annotations

from typing import Any


def verdict_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Strict and lenient accuracy, the verdict `accuracy` uses and the sandbox mode(s), for the
    keys every record has (an empty dict when the records carry none)."""
    details = [r.get("detail") or {} for r in records]
    out: dict[str, Any] = {}
    if not details:
        return out
    for key, name in (
        ("strict_correct", "accuracy_strict"),
        ("lenient_correct", "accuracy_lenient"),
    ):
        if all(key in d for d in details):
            out[name] = sum(bool(d[key]) for d in details) / len(details)
    verdicts = sorted({d["verdict"] for d in details if "verdict" in d})
    if verdicts:
        out["verdict"] = verdicts[0] if len(verdicts) == 1 else "mixed"
    modes = sorted({d["sandbox"] for d in details if d.get("sandbox")})
    if modes:
        out["sandbox"] = modes[0] if len(modes) == 1 else "mixed: " + ", ".join(modes)
    return out
