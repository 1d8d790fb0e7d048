"""`make cache`: what the key/value cache buys and costs, per decoder, from logged runs.

Each setting is one `nclb run` (run folders under `out_dir`, resumed when already logged, so the
table is rebuilt from the logs without decoding again): the decoders below with cache none,
prefix and dual on chain (greedy, batch 64), and on sudoku9 with the any-order refresh policy.
A second, smaller run of every cached setting turns `cache.audit` on to measure the KL between
the cached and the full pass at the committed positions (its time is not used).

Speed-ups are ratios measured in one `make cache` invocation on one machine, of examples per CPU
second of decoding (summary.json's `cpu_seconds`: the process's CPU time, one torch thread),
which other processes on a shared machine do not stretch, and beside them of examples per
wall-clock second of decoding (`examples_per_s`), which they do.

Its inputs (every run's summary, and each cached run's share of outputs that differ from the
run without cache) are shipped to results/logs/cache.json; `--no-run` rebuilds the table from
the run folders, else from there, without decoding.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nclb.config.compose import compose
from nclb.config.settings import resolve
from nclb.errors import UserError
from nclb.runs.identity import run_folder, run_key
from nclb.runs.runlog import read_records
from nclb.runs.runner import run

MODES = ("none", "prefix", "dual")
CHAIN_DECODERS = {
    "k=1": ["decoder=ktoken", "k=1"],
    "k=2": ["decoder=ktoken", "k=2"],
    "MED lam=0.2": ["decoder=med", "lam=0.2"],
    "MED lam=0.2 + gamma 0.1": ["decoder=med", "lam=0.2", "gamma=0.1"],
    "AR-MED lam=0.2 + gamma 0.1": ["decoder=ar_med", "lam=0.2", "gamma=0.1"],
    "threshold tau=0.9": ["decoder=threshold", "decoder.tau=0.9"],
}
SUDOKU_DECODERS = {"k=1": CHAIN_DECODERS["k=1"], "MED lam=0.2": CHAIN_DECODERS["MED lam=0.2"]}
# (task, n, decoders, cache refresh, audit n)
PANELS = (
    ("chain", 500, CHAIN_DECODERS, "block", 100),
    ("sudoku9", 100, SUDOKU_DECODERS, 8, 30),
)
ACCURACY_DECODERS = ("k=1", "MED lam=0.2", "MED lam=0.2 + gamma 0.1", "AR-MED lam=0.2 + gamma 0.1")


@dataclass
class Row:
    """One table row: a decoder with one cache mode on one task. Speed-ups: `cpu_*` of
    examples per CPU second, `wall_*` of examples per wall second, against the same decoder
    without cache (`same`) and against k=1 without cache (`k1`)."""

    task: str
    decoder: str
    cache: str
    n: int
    accuracy: float
    ci: float
    nfe: float
    computed: float
    examples_per_s: float | None
    examples_per_cpu_s: float | None
    differ: float | None = None
    cache_kl: float | None = None
    cpu_same: float | None = None
    cpu_k1: float | None = None
    wall_same: float | None = None
    wall_k1: float | None = None


def overrides(
    task: str, n: int, decoder: list[str], mode: str, refresh: Any, out: Path
) -> list[str]:
    """The `nclb run` overrides of one setting."""
    keys = [f"task={task}", f"limit={n}", "batch_size=64", "threads=1", f"out_dir={out}"]
    keys += [*decoder, f"cache={mode}"]
    return keys + ([f"cache.refresh={refresh}"] if mode != "none" else [])


@dataclass
class Inputs:
    """What the table reads, as shipped beside it (results/logs/cache.json): the summary of
    every run by run folder (nclb.runs.identity.run_key), and for each cached run the share of
    its outputs that differ from the same decoder's without cache (computed from the records)."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    differing: dict[str, float] = field(default_factory=dict)

    def as_log(self) -> dict[str, Any]:
        """The JSON form: {"runs": {...}, "outputs_differing": {...}}."""
        return {"runs": self.runs, "outputs_differing": self.differing}

    @classmethod
    def from_log(cls, data: dict[str, Any]) -> Inputs:
        """Read back the JSON form ({} gives no inputs)."""
        return cls(dict(data.get("runs") or {}), dict(data.get("outputs_differing") or {}))


def complete(summary: dict[str, Any], cfg: dict[str, Any]) -> bool:
    """Whether a summary covers every example asked for, decoded by one invocation that
    logged its timing."""
    return summary.get("n") == cfg["limit"] and bool(summary.get("cpu_seconds"))


def logged_run(
    keys: list[str], shipped: Inputs, execute: bool = True
) -> tuple[str, dict[str, Any], dict[str, str] | None]:
    """(run key, summary, outputs by example id) of one setting: read back from its run folder
    when complete, else taken from `shipped` (outputs None: no records are shipped), else
    decoded now (a UserError without `execute`)."""
    cfg = compose("config", keys)
    folder = run_folder(resolve(cfg))
    key, summary_path = run_key(folder), folder / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if complete(summary, cfg):
            return key, summary, outputs_of(folder)
    kept = shipped.runs.get(key)
    if kept is not None and complete(kept, cfg):
        return key, kept, None
    if not execute:
        raise UserError(
            f"the cache table's run {folder} is not logged (neither in its folder nor in the "
            "shipped results/logs/cache.json); drop --no-run to decode it"
        )
    summary = run(cfg)
    return key, summary, outputs_of(folder)


def outputs_of(folder: Path) -> dict[str, str]:
    """The output of every example a run folder's records hold, by example id."""
    return {r["id"]: r["output"] for r in read_records(folder / "records.jsonl")}


def differing(
    key: str, mine: dict[str, str] | None, plain: dict[str, str] | None, shipped: Inputs
) -> float:
    """The share of a cached run's outputs that differ from the run without cache: from both
    runs' records, else the shipped share."""
    if mine is not None and plain is not None:
        return sum(mine[i] != plain[i] for i in mine) / len(mine)
    if key not in shipped.differing:
        raise UserError(
            f"the cache table needs the records of {key} and of its run without cache, or the "
            "share of differing outputs shipped in results/logs/cache.json; drop --no-run"
        )
    return shipped.differing[key]


def timed(summary: dict[str, Any]) -> int:
    """The examples the summary's seconds cover (all of them for a summary written before
    nclb summed timings over invocations)."""
    return summary.get("timed_examples", summary["n"])


def interval(p: float, n: int) -> float:
    """Half-width of the normal 95% interval of an accuracy p over n examples."""
    return 1.96 * math.sqrt(p * (1 - p) / n) if n else float("nan")


def build(
    out: Path, panels=PANELS, shipped: Inputs | None = None, execute: bool = True
) -> tuple[list[Row], Inputs]:
    """Every row of the table and the inputs it read, decoding what is neither logged under
    `out` nor in `shipped` (a UserError instead without `execute`)."""
    shipped = shipped or Inputs()
    used = Inputs()
    rows = []
    for task, n, decoders, refresh, audit_n in panels:
        for label, decoder in decoders.items():
            plain = None
            for mode in MODES:
                keys = overrides(task, n, decoder, mode, refresh, out)
                key, summary, outputs = logged_run(keys, shipped, execute)
                used.runs[key] = summary
                row = Row(
                    task=task,
                    decoder=label,
                    cache=mode,
                    n=summary["n"],
                    accuracy=summary["accuracy"],
                    ci=interval(summary["accuracy"], summary["n"]),
                    nfe=summary["mean_nfe"],
                    computed=summary["mean_computed"],
                    examples_per_s=summary["examples_per_s"],
                    examples_per_cpu_s=timed(summary) / summary["cpu_seconds"],
                )
                if mode == "none":
                    plain = outputs
                else:
                    row.differ = used.differing[key] = differing(key, outputs, plain, shipped)
                    keys = overrides(task, audit_n, decoder, mode, refresh, out)
                    audit_key, audited, _ = logged_run(
                        [*keys, "cache.audit=true"], shipped, execute
                    )
                    used.runs[audit_key] = audited
                    row.cache_kl = audited["mean_cache_kl"]
                rows.append(row)
    for row in rows:
        same, k1 = find(rows, row.task, row.decoder, "none"), find(rows, row.task, "k=1", "none")
        row.cpu_same = ratio(row.examples_per_cpu_s, same.examples_per_cpu_s)
        row.cpu_k1 = ratio(row.examples_per_cpu_s, k1.examples_per_cpu_s)
        row.wall_same = ratio(row.examples_per_s, same.examples_per_s)
        row.wall_k1 = ratio(row.examples_per_s, k1.examples_per_s)
    used.runs = dict(sorted(used.runs.items()))
    used.differing = dict(sorted(used.differing.items()))
    return rows, used


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing."""
    return a / b if a and b else None


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    """A table cell ('-' for a missing value)."""
    return "-" if value is None else format(value, spec) + unit


def find(rows: list[Row], task: str, decoder: str, cache: str) -> Row:
    """The row of one setting."""
    return next(r for r in rows if (r.task, r.decoder, r.cache) == (task, decoder, cache))


def verdict(ok: bool) -> str:
    """How a target reads in the table."""
    return "met" if ok else "NOT met"


def checks(rows: list[Row]) -> list[str]:
    """The targets, each computed from the rows (met / not met, with the numbers)."""
    out = []
    for label in ACCURACY_DECODERS:
        base, dual = find(rows, "chain", label, "none"), find(rows, "chain", label, "dual")
        gap = 100 * (dual.accuracy - base.accuracy)
        out.append(
            f"- {label}, dual vs no cache: accuracy {100 * dual.accuracy:.1f}% vs "
            f"{100 * base.accuracy:.1f}% ({gap:+.1f} points): {verdict(abs(gap) <= 1.0)} "
            "(within 1.0)"
        )
    for label, goal in (("k=1", 3.0), ("MED lam=0.2", 1.8)):
        dual = find(rows, "chain", label, "dual")
        out.append(
            f"- {label}, dual: {fmt(dual.cpu_same, '.2f', 'x')} its own no-cache examples per "
            f"CPU second ({fmt(dual.wall_same, '.2f', 'x')} per wall second): "
            f"{verdict((dual.cpu_same or 0) >= goal)} (>= {goal}x)"
        )
    best = find(rows, "chain", "MED lam=0.2 + gamma 0.1", "dual")
    k1 = find(rows, "chain", "k=1", "none")
    gap = 100 * (best.accuracy - k1.accuracy)
    out.append(
        f"- MED lam=0.2 + gamma 0.1 + dual: {fmt(best.cpu_k1, '.2f', 'x')} the examples per CPU "
        f"second of k=1 without cache ({fmt(best.wall_k1, '.2f', 'x')} per wall second), "
        f"{gap:+.1f} points against it: {verdict((best.cpu_k1 or 0) >= 8 and abs(gap) <= 1)} "
        "(>= 8x within 1 point)"
    )
    for task in dict.fromkeys(r.task for r in rows):
        base, dual = find(rows, task, "k=1", "none"), find(rows, task, "k=1", "dual")
        out.append(
            f"- {task}, k=1: dual computes {dual.computed / base.computed:.0%} of the positions "
            f"of no cache ({dual.computed:.0f} against {base.computed:.0f} per example), at "
            f"{fmt(dual.cpu_same, '.2f', 'x')} its examples per CPU second"
        )
    return out


COLUMNS = {
    "task": lambda r: r.task,
    "decoder": lambda r: r.decoder,
    "cache": lambda r: r.cache,
    "n": lambda r: r.n,
    "accuracy": lambda r: f"{r.accuracy:.4f}",
    "ci95": lambda r: f"{r.ci:.4f}",
    "nfe": lambda r: f"{r.nfe:.2f}",
    "computed_per_example": lambda r: f"{r.computed:.1f}",
    "examples_per_s": lambda r: fmt(r.examples_per_s, ".3f"),
    "examples_per_cpu_s": lambda r: fmt(r.examples_per_cpu_s, ".3f"),
    "cpu_speedup_vs_same_no_cache": lambda r: fmt(r.cpu_same, ".3f"),
    "cpu_speedup_vs_k1_no_cache": lambda r: fmt(r.cpu_k1, ".3f"),
    "wall_speedup_vs_same_no_cache": lambda r: fmt(r.wall_same, ".3f"),
    "wall_speedup_vs_k1_no_cache": lambda r: fmt(r.wall_k1, ".3f"),
    "outputs_differing": lambda r: fmt(r.differ, ".4f"),
    "cache_kl": lambda r: fmt(r.cache_kl, ".3g"),
}


def markdown_row(r: Row) -> str:
    """One row of results/cache.md."""
    cells = [
        r.task,
        r.decoder,
        r.cache,
        str(r.n),
        f"{100 * r.accuracy:.1f} ± {100 * r.ci:.1f}",
        f"{r.nfe:.1f}",
        f"{r.computed:.0f}",
        fmt(r.examples_per_cpu_s, ".2f"),
        fmt(r.cpu_same, ".2f", "x"),
        fmt(r.cpu_k1, ".2f", "x"),
        fmt(r.examples_per_s, ".2f"),
        fmt(r.wall_same, ".2f", "x"),
        fmt(r.wall_k1, ".2f", "x"),
        fmt(None if r.differ is None else 100 * r.differ, ".1f", "%"),
        fmt(r.cache_kl, ".2g"),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| task | decoder | cache | n | accuracy (95%) | NFE | computed | ex/CPU-s | vs same | vs k=1 "
    "| ex/s (wall) | wall vs same | wall vs k=1 | differ | KL |"
)


def write(rows: list[Row], results: Path, command: str, git: str) -> list[Path]:
    """results/cache.md and results/cache.csv."""
    csv_path, md_path = results / "cache.csv", results / "cache.md"
    results.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([cell(r) for cell in COLUMNS.values()])
    lines = [
        "# Key/value cache: accuracy, passes, positions computed and speed per decoder",
        "",
        f"Command: `{command}`; git {git}; tiny model, fp32, greedy, batch 64, continuous "
        "batching, one torch thread. Speed-ups are ratios within that one invocation: of "
        "examples per CPU second of decoding (`ex/CPU-s`, `vs same`, `vs k=1`: the process's "
        "CPU time, what the decoding costs whatever else the machine runs) and of examples per wall-clock "
        "second of decoding (`wall`: stretched by whatever else ran on this shared 2-core "
        "machine). `vs same`: against the same decoder without cache; `vs k=1`: against k=1 "
        "without cache. `computed`: positions (prompt included) the forward passes computed per "
        "example. `differ`: share of outputs that differ from the same decoder without cache. "
        "`KL`: mean KL(full pass || cached pass) at the positions the cached passes committed "
        "(cache.audit=true, on the first examples of the task).",
        "",
        HEADER,
        "|" + "---|" * 15,
        *(markdown_row(r) for r in rows),
        "",
        "Targets and what the rows show (computed from the rows above; on an any-order task "
        "the active block is the whole region, so only the prompt is cached):",
        "",
        *checks(rows),
        "",
    ]
    md_path.write_text("\n".join(lines))
    return [md_path, csv_path]
