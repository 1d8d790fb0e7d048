"""`nclb lm-eval`: lm-eval's `simple_evaluate` with the nclb model; nclb's records and summary
and lm-eval's results in one run folder.

The folder (`<out_dir>/<model>/<task>/<decoder>-<hash>`, the hash covering the nclb settings and
the lm-eval tasks) holds records.jsonl (one line per lm-eval request, appended as each finishes:
output, response, NFE, nclb's score where the context is an nclb example), summary.json, and
lm-eval's own outputs: lm_eval_results.json (its results dict) and lm_eval_samples.jsonl (its
per-sample filtered responses and metrics). Running the same command again resumes.

Under torchrun (`torchrun --nproc_per_node N -m nclb lm-eval ...`) the ranks share the
generate_until requests (nclb.lmeval.adapter); rank 0 alone writes lm-eval's outputs and the
summary and prints the scores, and the other ranks then print rank 0's scores.
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nclb.errors import UserError
from nclb.lmeval import LOCAL_TASKS, local_task_dir, require_lm_eval
from nclb.lmeval.settings import HarnessOptions, compose_evaluation, harness_options
from nclb.runs.revision import git_revision
from nclb.runs.runlog import SUMMARY, write_json_atomic

if TYPE_CHECKING:
    from nclb.lmeval.adapter import NclbLM

RESULTS = "lm_eval_results.json"
SAMPLES = "lm_eval_samples.jsonl"


def task_manager(options: HarnessOptions) -> Any:
    """lm-eval's TaskManager over configs/lm_eval/ (+ include_path); lm-eval's own task
    catalogue (thousands of YAMLs) is indexed only when a task is not found there."""
    from lm_eval.tasks import TaskManager

    paths = [str(local_task_dir())]
    if options.include_path:
        path = Path(options.include_path).expanduser()
        if not path.is_dir():
            raise UserError(f"include_path={options.include_path} is not a folder of task YAMLs")
        paths.append(str(path))
    local = TaskManager(include_path=paths, include_defaults=False)
    if set(options.tasks) <= set(local.all_tasks):
        return local
    return TaskManager(include_path=paths, include_defaults=True)


@contextmanager
def hub_access(needed: bool):
    """Datasets and hub clients in offline mode while the hub is unreachable, so a task that
    needs it fails at once instead of retrying."""
    from nclb.tasks.data import hub_online

    keys = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    saved = {key: os.environ.get(key) for key in keys}
    if needed and not hub_online():
        os.environ.update({key: "1" for key in keys})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def task_error(err: Exception, tasks: list[str]) -> UserError:
    """A one-line message for a task that lm-eval could not load."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, KeyError):
        return UserError(
            f"lm-eval does not know a task in tasks={tasks} ({text.strip(chr(34))}); nclb's local "
            f"tasks are {sorted(LOCAL_TASKS)}; `python -m lm_eval ls tasks` lists lm-eval's own"
        )
    hub = re.search(r"'([^']+)' on the Hub", text)
    dataset = hub.group(1) if hub else "its dataset"
    return UserError(
        f"tasks={tasks} need {dataset} from the Hugging Face hub, which is not reachable here "
        f"({text}); download it where there is internet (huggingface-cli download --repo-type "
        f"dataset {dataset}) and copy the HF cache ($HF_HOME) here, or use a local task: "
        f"{sorted(LOCAL_TASKS)}"
    )


def load_tasks(manager: Any, tasks: list[str]) -> None:
    """Load the tasks once before any model is built, so a missing dataset fails at once."""
    try:
        manager.load(tasks)
    except (KeyError, ConnectionError, FileNotFoundError, OSError) as err:
        raise task_error(err, tasks) from None
    except Exception as err:  # datasets / huggingface_hub errors have their own classes
        if type(err).__module__.split(".")[0] in ("datasets", "huggingface_hub", "requests"):
            raise task_error(err, tasks) from None
        raise


def sample_lines(results: dict[str, Any]) -> list[dict[str, Any]]:
    """lm-eval's per-sample outputs, one dict per (task, document, filter)."""
    lines = []
    for task, samples in (results.get("samples") or {}).items():
        for sample in samples:
            lines.append(
                {
                    "task": task,
                    "doc_id": sample["doc_id"],
                    "filter": sample.get("filter"),
                    "target": sample.get("target"),
                    "filtered_resps": sample.get("filtered_resps"),
                    "metrics": {m: sample.get(m) for m in sample.get("metrics", [])},
                }
            )
    return lines


def summarize(
    records: list[dict[str, Any]], results: dict[str, Any], cfg: dict[str, Any], wall: float
) -> dict[str, Any]:
    """Request counts, mean NFE, tokens per NFE, exit rate, nclb's accuracy on the contexts it
    could score, lm-eval's metrics, the config and the git revision."""
    generated = [r for r in records if r.get("request") == "generate_until"]
    scored = [r for r in generated if "correct" in r]
    nfe = sum(r["nfe"] for r in records)
    tokens = sum(r.get("gen_tokens", 0) for r in generated)
    n_gen = len(generated)
    return {
        "n": len(records),
        "n_generate_until": n_gen,
        "n_loglikelihood": len(records) - n_gen,
        "mean_nfe": nfe / len(records) if records else None,
        "tokens_per_nfe": tokens / sum(r["nfe"] for r in generated) if tokens else None,
        "exit_rate": sum(r["exit_step"] is not None for r in generated) / n_gen if n_gen else None,
        "nclb_scored": len(scored),
        "nclb_accuracy": sum(r["correct"] for r in scored) / len(scored) if scored else None,
        "lm_eval": results.get("results"),
        "seconds": wall,
        "git": git_revision(),
        "config": cfg,
    }


def harness_identity(options: HarnessOptions) -> dict[str, Any]:
    """The lm-eval settings that are part of a run folder's identity."""
    return {
        "tasks": options.tasks,
        "num_fewshot": options.num_fewshot,
        "mc_samples": options.mc_samples,
    }


def evaluate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run lm-eval on the nclb model for a composed configs/lm_eval.yaml; returns the summary."""
    require_lm_eval()
    options = harness_options(cfg)
    from lm_eval import simple_evaluate

    from nclb.lmeval.adapter import NclbLM

    manager = task_manager(options)
    with hub_access(not set(options.tasks) <= set(LOCAL_TASKS)):
        load_tasks(manager, options.tasks)
        lm = NclbLM(config=cfg, harness=harness_identity(options))
        try:
            start = time.perf_counter()
            seed = lm.settings.seed
            results = simple_evaluate(
                model=lm,
                model_args=lm.model_args(),
                device=str(lm.model.device),
                tasks=options.tasks,
                num_fewshot=options.num_fewshot,
                limit=lm.settings.limit,
                log_samples=True,
                task_manager=manager,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
            shard = lm.shard
            if not shard.leader:  # lm-eval returns its results on rank 0 only
                summary = shard.leader_summary(lm.folder / SUMMARY)
                print(leader_report(summary, shard.rank))
                return summary
            summary = write_outputs(lm, results, cfg, time.perf_counter() - start)
            shard.barrier()  # the summary is written: the other ranks may read it
        finally:
            lm.close()
    print(report(summary))
    return summary


def write_outputs(
    lm: NclbLM, results: dict[str, Any], cfg: dict[str, Any], wall: float
) -> dict[str, Any]:
    """Write lm-eval's samples and results and nclb's summary into the run folder of `lm`;
    returns the summary."""
    folder = lm.folder
    lines = sample_lines(results)
    with (folder / SAMPLES).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
    results.pop("samples", None)
    write_json_atomic(folder / RESULTS, results)
    summary = summarize(list(lm.log.used.values()), results, cfg, wall)
    summary["processes"] = {"world_size": lm.shard.world, "decoded_per_rank": lm.shard.decoded}
    summary["run_dir"] = str(folder)
    write_json_atomic(folder / SUMMARY, summary)
    return summary


def leader_report(summary: dict[str, Any], rank: int) -> str:
    """What a rank other than 0 prints: rank 0's report, each line marked with its rank."""
    lines = [f"rank 0 wrote {Path(summary['run_dir']) / RESULTS}", *report(summary).splitlines()]
    return "\n".join(f"rank {rank}: {line}" for line in lines)


def report(summary: dict[str, Any]) -> str:
    """One line per lm-eval metric, then the run folder."""
    lines = []
    for task, metrics in (summary.get("lm_eval") or {}).items():
        for key, value in metrics.items():
            if "," in key and "stderr" not in key and isinstance(value, int | float):
                lines.append(f"{task} {key}: {value:.4f}")
    nclb = summary.get("nclb_accuracy")
    if nclb is not None:
        lines.append(f"nclb's own scorer: {nclb:.4f} on {summary['nclb_scored']} outputs")
    lines.append(
        f"n={summary['n']} mean NFE={summary['mean_nfe'] or 0:.1f} -> {summary['run_dir']}"
    )
    return "\n".join(lines)


def lm_eval_command(argv: list[str]) -> None:
    """`nclb lm-eval key=value ...` (nclb.cli handles --help and -m)."""
    flags = [a for a in argv if a.startswith("-")]
    if flags:
        raise UserError(f"nclb lm-eval takes key=value overrides only, not {flags[0]}")
    require_lm_eval()
    evaluate(compose_evaluation(argv))
