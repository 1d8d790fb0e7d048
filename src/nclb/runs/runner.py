"""`nclb run`: decode a task's examples with one model and decoder, log records and a summary."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from nclb.config.settings import RunSettings, resolve
from nclb.models.base import MaskedLM, describe_model
from nclb.models.build import build_model
from nclb.runs import sharding
from nclb.runs.identity import run_dir, settings_identity
from nclb.runs.kl import KLOptions, kl_options, kl_record, kl_summary
from nclb.runs.lock import RunLock
from nclb.runs.revision import git_revision
from nclb.runs.runlog import (
    RECORDS,
    RUN_RECORD,
    SUMMARY,
    RecordWriter,
    read_json,
    read_records,
    write_json_atomic,
)
from nclb.runs.stale import set_aside_stale_records
from nclb.sampler import Decoder, Generation, SamplerConfig, generate
from nclb.sampler.streams import default_streams, stream_id
from nclb.tasks.base import Task
from nclb.tasks.build import build_task, model_context
from nclb.tasks.outputs import read_output
from nclb.tasks.scoring_pool import ScoringPool, scoring_workers
from nclb.tasks.verdicts import verdict_summary
from nclb.types import Canvas, Example


def decode(
    model: MaskedLM,
    canvases: list[Canvas],
    decoder: Decoder,
    sampler: SamplerConfig,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    streams: list[int] | None = None,
    on_done: Callable[[int, Generation], None] | None = None,
    continuous: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Decode every canvas with at most `batch_size` rows in flight; returns the generations in
    canvas order and calls `on_done(index, generation)` as each finishes.

    continuous: finished rows are replaced from the queue at once (continuous batching); False
    decodes consecutive batches of `batch_size`, each to its last row. A model that cannot pad
    (LLaDA) gets one queue per prompt length. streams: one random stream id per canvas
    (`stream_id(seed, example id)`); without them they are derived from one draw of
    `generator`. Either way a canvas's samples do not depend on the batching. on_step(rows):
    called at each step with its rows in flight (nclb.sampler.generate).
    """
    if streams is None:
        streams = default_streams(len(canvases), generator)
    queues: list[list[int]] = [list(range(len(canvases)))]
    if not model.supports_padding:
        by_length: dict[int, list[int]] = {}
        for i, c in enumerate(canvases):
            by_length.setdefault(len(c.prompt), []).append(i)
        queues = list(by_length.values())
    if not continuous:
        queues = [q[i : i + batch_size] for q in queues for i in range(0, len(q), batch_size)]
    out: list[Generation | None] = [None] * len(canvases)
    for queue in queues:

        def done(j: int, gen: Generation, queue: list[int] = queue) -> None:
            out[queue[j]] = gen
            if on_done is not None:
                on_done(queue[j], gen)

        generate(
            model,
            [canvases[i] for i in queue],
            decoder,
            sampler,
            on_done=done,
            batch_size=batch_size,
            streams=[streams[i] for i in queue],
            on_step=on_step,
        )
    return out


def make_record(
    ex: Example,
    canvas: Canvas,
    gen: Generation,
    task: Task,
    model: MaskedLM,
    seconds: float,
    trajectory: bool,
) -> dict[str, Any]:
    """The per-example log line: prompt, output, answer, correctness, NFE, tokens, time."""
    out = read_output(task, model, ex, canvas, gen.region)
    text, answer, score = out.text, out.answer, out.score
    committed = sum(len(s.positions) for s in gen.steps)
    record = {
        "id": ex.id,
        "prompt": ex.prompt,
        "output": text,
        "answer_text": answer,
        "prediction": score.prediction,
        "gold": ex.gold if isinstance(ex.gold, str | int | float | bool | None) else str(ex.gold),
        "correct": bool(score.correct),
        "nfe": gen.nfe,
        "computed": gen.computed,
        "refreshes": gen.refreshes,
        "cache_kl": gen.cache_kl,
        "gen_tokens": committed,
        "seconds": seconds,
        "exit_step": gen.exit_step,
    }
    if score.detail:
        record["detail"] = score.detail
    if trajectory:
        record["trajectory"] = [asdict(s) for s in gen.steps]
        # The starting region (masks and pre-filled ids) and the answer block, for `nclb show`.
        record["canvas"] = {"region": list(canvas.region), "answer": canvas.answer}
    return record


def mean_of(records: list[dict[str, Any]], key: str) -> float | None:
    """The mean of `key` over the records that log it (None when none does: records written
    before the key existed)."""
    values = [r[key] for r in records if key in r]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Timing:
    """Examples decoded and the decode seconds they took, summed over invocations."""

    examples: int = 0
    seconds: float = 0.0

    def plus(self, examples: int, seconds: float) -> Timing:
        """This timing with one more invocation's (nothing added when it decoded nothing)."""
        if not examples:
            return self
        return Timing(self.examples + examples, self.seconds + seconds)


def earlier_timing(previous: dict[str, Any] | None, resumed: int) -> Timing:
    """What the folder's previous summary.json says its decoding took, when that summary covers
    no more than the `resumed` records (a folder started over, or cut down, counts from zero).
    A summary from before the timing was summed covers its last invocation only."""
    if not previous or not previous.get("n") or previous["n"] > resumed:
        return Timing()
    if "timed_examples" in previous:
        return Timing(int(previous["timed_examples"]), float(previous["seconds"]))
    rate, seconds = previous.get("examples_per_s"), previous.get("seconds")
    if not rate or not seconds:
        return Timing()
    return Timing(round(rate * seconds), float(seconds))


def summarize(
    records: list[dict[str, Any]],
    new: int,
    wall: float,
    cfg: dict[str, Any],
    folder: Path,
    earlier: Timing | None = None,
) -> dict:
    """The folder's figures over every record (n, accuracy, mean NFE, tokens per NFE, exit
    rate; seconds: the decode time summed over the invocations that decoded them, as timed by
    the summaries before, and examples_per_s over that), this invocation's (the `new` examples
    decoded in `wall` seconds) under this_invocation, the config and the git revision."""
    n = len(records)
    nfe = sum(r["nfe"] for r in records)
    timed = (earlier or Timing()).plus(new, wall)
    return {
        "n": n,
        "accuracy": sum(r["correct"] for r in records) / n if n else None,
        "mean_nfe": nfe / n if n else None,
        "mean_computed": mean_of(records, "computed"),
        "mean_refreshes": mean_of(records, "refreshes"),
        "mean_cache_kl": mean_of([r for r in records if r.get("cache_kl") is not None], "cache_kl"),
        "mean_gen_tokens": sum(r["gen_tokens"] for r in records) / n if n else None,
        "tokens_per_nfe": sum(r["gen_tokens"] for r in records) / nfe if nfe else None,
        "exit_rate": sum(r["exit_step"] is not None for r in records) / n if n else None,
        "examples_per_s": rate(timed.examples, timed.seconds),
        "seconds": timed.seconds,
        "timed_examples": timed.examples,
        "this_invocation": {"decoded": new, "seconds": wall, "examples_per_s": rate(new, wall)},
        "run_dir": str(folder),
        "git": git_revision(),
        "config": cfg,
    }


def rate(examples: int, seconds: float) -> float | None:
    """Examples per second (None when nothing was decoded)."""
    return examples / seconds if examples and seconds > 0 else None


def describe(s: RunSettings) -> str:
    """A short human label of the decoder settings."""
    params = " ".join(f"{k}={v}" for k, v in s.decoder_cfg.items() if k != "name")
    exit_ = f" gamma={s.sampler.gamma}" if s.sampler.gamma is not None else ""
    return f"{s.decoder_cfg['name']} {params} block={s.sampler.block}{exit_}".strip()


@dataclass
class OpenRun:
    """A run folder opened for writing: its identity, its lock (held until the summary is
    written; None on the non-leading ranks of a sharded run) and the records it already holds."""

    folder: Path
    identity: dict[str, Any]
    lock: RunLock | None
    done: list[dict[str, Any]]


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration end to end and return its summary (also written to summary.json;
    under torchrun every rank returns the summary rank 0 wrote)."""
    s = resolve(cfg)
    kl_opts = kl_options(cfg.get("metrics"), s.sampler, s.decoder)
    task = build_task(s.task)
    every = task.examples()  # the ids a record of this run may have, beyond `limit` too
    examples = every[: s.limit]
    shard = sharding.join()  # rank 0 of 1 unless torchrun started several processes
    s.model = {**s.model, "device": shard.device(str(s.model.get("device", "auto")))}
    model = build_model(s.model, model_context(task, examples, s.gen_length))
    opened = open_run(s, shard, {ex.id for ex in every})
    try:
        finished = {r["id"] for r in opened.done}
        todo = [
            (ex, task.canvas(ex, model, s.gen_length)) for ex in examples if ex.id not in finished
        ]
        todo = shard.split(todo)
        start, cpu_start = time.perf_counter(), time.process_time()
        new = decode_and_log(s, task, model, todo, opened, shard, kl_opts)
        cpu = time.process_time() - cpu_start
        merged = shard.merge(opened.folder, [ex.id for ex in examples], new)
        if merged is None:
            return shard.leader_summary(opened.folder / SUMMARY)
        seconds = (time.perf_counter() - start, cpu)
        summary = finalize(cfg, s, task, model, opened, merged, seconds, shard)
        shard.barrier()  # the summary is written: the other ranks may read it
        return summary
    finally:  # also when the run is rejected or stopped: no lock file outlives it
        if opened.lock is not None:
            opened.lock.release()


def open_run(s: RunSettings, shard: sharding.Shard, known: set[str]) -> OpenRun:
    """Lock the run's folder (another process on it waits, then resumes) and read the records
    to resume from (the lock is released again when that fails)."""
    identity = settings_identity(s)
    folder = run_dir(s.out_dir, identity)
    lock = RunLock(folder) if shard.leader else None
    try:
        done = logged_records(s, shard, folder, identity, lock, known)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return OpenRun(folder, identity, lock, done)


def logged_records(
    s: RunSettings,
    shard: sharding.Shard,
    folder: Path,
    identity: dict[str, Any],
    lock: RunLock | None,
    known: set[str],
) -> list[dict[str, Any]]:
    """The records to resume from: lines that are not complete records of examples with ids
    in `known` are set aside, so are the records of a replaced checkpoint (by the process that
    holds the folder's `lock`), and resume=false starts over."""
    if s.resume and lock is not None:
        stale = set_aside_stale_records(folder, identity)
        if stale is not None:
            print(
                f"the checkpoint is newer than {folder / RECORDS}: kept as {stale.name}, "
                "starting over",
                file=sys.stderr,
            )
    shard.prepare(folder, s.resume)
    if not s.resume:
        return []
    if lock is not None:
        return lock.records(RUN_RECORD, known)  # says how many logged examples are resumed
    return read_records(folder / RECORDS, schema=RUN_RECORD, known=known)


def decode_and_log(
    s: RunSettings,
    task: Task,
    model: MaskedLM,
    todo: list[tuple[Example, Canvas]],
    opened: OpenRun,
    shard: sharding.Shard,
    kl_opts: KLOptions,
) -> list[dict[str, Any]]:
    """Decode the examples to do and append a scored record for each as it finishes (a Ctrl-C
    keeps every finished record); returns the new records."""
    # Each example's random stream depends on the seed and its id only (not on the batch,
    # the order, a resume or the shard), so sampled outputs are reproducible.
    streams = [stream_id(s.seed, ex.id) for ex, _ in todo]
    folder, done = opened.folder, opened.done
    writer = RecordWriter(shard.records_path(folder), RUN_RECORD)
    new: list[dict[str, Any]] = []
    correct = sum(r["correct"] for r in done)
    try:
        with tqdm(  # one progress bar: rank 0's
            total=len(todo), desc=f"{task.name} {describe(s)}", unit="ex", disable=not shard.leader
        ) as bar:

            def write(record: dict[str, Any]) -> None:
                nonlocal correct
                writer.write(record)
                new.append(record)
                correct += record["correct"]
                bar.set_postfix(acc=f"{correct / (len(done) + len(new)):.3f}", refresh=False)
                bar.update(1)

            # Slow scorers (HumanEval's sandbox) score beside the decode loop; records are
            # still written in order (docs/scoring.md).
            scoring = ScoringPool(scoring_workers(task), write)

            def log(index: int, gen: Generation) -> None:
                ex, canvas = todo[index]
                kl = None
                if kl_opts.kl:
                    kl = kl_record(model, canvas, gen, s.sampler.temperature, kl_opts)

                def make() -> dict[str, Any]:
                    record = make_record(
                        ex, canvas, gen, task, model, gen.seconds, s.log_trajectory
                    )
                    return record if kl is None else {**record, "kl": kl}

                scoring.submit(make)

            canvases = [c for _, c in todo]
            try:
                decode(
                    model,
                    canvases,
                    s.decoder,
                    s.sampler,
                    s.batch_size,
                    streams=streams,
                    on_done=log,
                )
            finally:
                scoring.close()  # every record scored so far is written, even on Ctrl-C
    except KeyboardInterrupt:
        kept = len(done) + len(new)
        print(
            f"\ninterrupted: {kept} finished examples are logged in {folder}; "
            "run the same command to resume",
            file=sys.stderr,
        )
        raise
    finally:
        writer.close()
    return new


def finalize(
    cfg: dict[str, Any],
    s: RunSettings,
    task: Task,
    model: MaskedLM,
    opened: OpenRun,
    new: list[dict[str, Any]],
    seconds: tuple[float, float],
    shard: sharding.Shard,
) -> dict[str, Any]:
    """Write summary.json over every record in the folder (not this invocation's `limit`) and
    print the one-line result; `seconds`: this invocation's decoding time, wall and CPU."""
    records = opened.done + new
    previous = read_json(opened.folder / SUMMARY)
    same = json.loads(json.dumps(opened.identity, default=str))
    if previous is not None and previous.get("identity") != same:
        previous = None
    earlier = earlier_timing(previous, len(opened.done))
    summary = summarize(records, len(new), seconds[0], cfg, opened.folder, earlier)
    carried = previous.get("cpu_seconds", 0.0) if previous and earlier.examples else 0.0
    summary["cpu_seconds"] = carried + (seconds[1] if new else 0.0)  # summed like `seconds`
    summary["this_invocation"]["cpu_seconds"] = seconds[1]
    summary["label"] = describe(s)
    summary["identity"] = opened.identity
    summary["loaded_model"] = describe_model(model)
    summary.update(verdict_summary(records))
    kl = kl_summary(records)
    if kl is not None:
        summary["kl"] = kl
    summary["processes"] = {"world_size": shard.world, "decoded_per_rank": shard.decoded}
    write_json_atomic(opened.folder / SUMMARY, summary)
    acc = summary["accuracy"]
    print(
        f"{s.model['name']} | {task.name} | {describe(s)} | n={summary['n']} "
        f"acc={acc:.3f} nfe={summary['mean_nfe']:.1f} -> {opened.folder}"
        if summary["n"]
        else f"no examples to run -> {opened.folder}"
    )
    return summary
