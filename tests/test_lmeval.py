"""nclb as an lm-evaluation-harness model: real `simple_evaluate` runs on local tasks."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

pytest.importorskip("lm_eval", reason="the lmeval extra: pip install 'nclb[lmeval]'")

from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from nclb import cli  # noqa: E402
from nclb.config.compose import compose  # noqa: E402
from nclb.errors import UserError  # noqa: E402
from nclb.lmeval import local_task_dir  # noqa: E402
from nclb.lmeval.adapter import NclbLM, cut_at_stops  # noqa: E402
from nclb.lmeval.command import RESULTS, SAMPLES, evaluate, task_error  # noqa: E402
from nclb.lmeval.mdlm import mdlm_loglikelihood  # noqa: E402
from nclb.lmeval.settings import compose_evaluation  # noqa: E402
from nclb.runs.runlog import RECORDS, SUMMARY, read_records  # noqa: E402
from nclb.runs.runner import run  # noqa: E402
from nclb.runs.sharding import Shard, shard_files  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["model=tiny", "task=arith", "decoder=med", "lam=0.2", "device=cpu", "batch_size=3"]


def nclb_run_outputs(overrides: list[str], out_dir) -> dict[str, dict]:
    """`nclb run` with the same settings: its records by example id."""
    summary = run(compose("config", [*overrides, f"out_dir={out_dir}"]))
    records = read_records(__import__("pathlib").Path(summary["run_dir"]) / RECORDS)
    return {r["id"]: r for r in records}


def lm_eval_records(summary: dict) -> list[dict]:
    """The records of an `nclb lm-eval` run folder."""
    from pathlib import Path

    return read_records(Path(summary["run_dir"]) / RECORDS)


def test_tiny_model_outputs_equal_nclb_run(tmp_path) -> None:
    """simple_evaluate on the local arith task gives nclb run's outputs, NFE and scores."""
    overrides = [*TINY, "limit=5"]
    summary = evaluate(
        compose_evaluation([*overrides, "tasks=nclb_arith", f"out_dir={tmp_path}/a"])
    )
    records = lm_eval_records(summary)
    assert len(records) == 5
    ours = nclb_run_outputs(overrides, tmp_path / "r")
    assert sorted(r["example_id"] for r in records) == sorted(ours)
    for r in records:
        same = ours[r["example_id"]]
        assert r["output"] == same["output"] and r["response"] == same["output"]
        assert (r["nfe"], r["correct"]) == (same["nfe"], same["correct"])
    # lm-eval scored the same texts: its strict rule agrees with nclb's scorer on each one
    folder = tmp_path / "a"
    samples = [json.loads(line) for line in next(folder.rglob(SAMPLES)).read_text().splitlines()]
    strict = {
        s["doc_id"]: s["metrics"]["exact_match"] for s in samples if s["filter"] == "strict-match"
    }
    assert {r["doc_id"]: float(r["correct"]) for r in records} == strict
    results = json.loads(next(folder.rglob(RESULTS)).read_text())
    assert results["results"]["nclb_arith"]["exact_match,strict-match"] == pytest.approx(
        summary["nclb_accuracy"]
    )
    args = results["config"]["model_args"]  # nclb's settings, and the device the model ran on
    assert args["model.name"] == "tiny" and args["decoder.name"] == "med"
    assert args["decoder.lam"] == 0.2 and args["sampler.block"] == 8 and args["seed"] == 0
    assert results["config"]["device"] == "cpu"


def test_sampled_outputs_equal_nclb_run(tmp_path) -> None:
    """Sampling (temperature 4: the tiny model is too sure of itself at 1 for samples to differ
    from the argmax): each nclb example samples from its own stream (seed, example id) in both,
    and another seed gives other samples."""
    overrides = [*TINY, "decoder=ktoken", "k=2", "lam=null", "temperature=4", "limit=4"]
    summary = evaluate(
        compose_evaluation([*overrides, "seed=3", "tasks=nclb_arith", f"out_dir={tmp_path}/a"])
    )
    records = lm_eval_records(summary)
    assert len(records) == 4
    ours = nclb_run_outputs([*overrides, "seed=3"], tmp_path / "r")
    assert all(r["output"] == ours[r["example_id"]]["output"] for r in records)
    other = nclb_run_outputs([*overrides, "seed=4"], tmp_path / "r")
    assert any(r["output"] != other[r["example_id"]]["output"] for r in records)


def test_reference_model_scores_100_percent_through_lm_eval(tmp_path, capsys) -> None:
    """`nclb lm-eval model=reference tasks=nclb_gsm8k`: 100% by lm-eval's own metric, and the
    outputs are nclb run's."""
    overrides = ["model=reference", "decoder=med", "lam=0.2", "limit=2", "batch_size=2"]
    cli.main(["lm-eval", "tasks=nclb_gsm8k", *overrides, f"out_dir={tmp_path}/a"])
    assert "exact_match,flexible-extract: 1.0000" in capsys.readouterr().out
    summary = json.loads(next((tmp_path / "a").rglob(SUMMARY)).read_text())
    assert summary["config"]["task"]["name"] == "gsm8k"  # picked from the local task
    metrics = summary["lm_eval"]["nclb_gsm8k"]
    assert metrics["exact_match,strict-match"] == 1.0
    assert metrics["exact_match,flexible-extract"] == 1.0
    ours = nclb_run_outputs([*overrides, "task=gsm8k"], tmp_path / "r")
    for r in lm_eval_records(summary):
        assert r["output"] == ours[r["example_id"]]["output"]


def test_resume_decodes_nothing_twice(tmp_path, monkeypatch) -> None:
    """A second identical evaluation reads every response from records.jsonl."""
    cfg = compose_evaluation([*TINY, "limit=3", "tasks=nclb_arith", f"out_dir={tmp_path}"])
    first = evaluate(cfg)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a logged request was decoded again")

    monkeypatch.setattr("nclb.lmeval.adapter.decode", no_decoding)
    second = evaluate(cfg)
    assert second["lm_eval"] == first["lm_eval"]
    assert len(lm_eval_records(second)) == 3


def instance(context: str, until: list[str], doc_id: int = 0) -> Instance:
    """An lm-eval generate_until request."""
    return Instance("generate_until", {}, (context, {"until": until}), 0, ("t", doc_id, 1))


def test_stop_sequences_cut_the_decoded_region(tmp_path) -> None:
    lm = NclbLM(config=compose_evaluation([*TINY, f"out_dir={tmp_path}"]))
    try:
        prompt = lm.task.examples(1)[0].prompt
        full, cut = lm.generate_until([instance(prompt, []), instance(prompt, [";"], 1)])
    finally:
        lm.close()
    assert ";" in full and cut == full[: full.index(";")]
    assert cut_at_stops("a;b|c", ["|", ";"]) == "a" and cut_at_stops("abc", ["x"]) == "abc"


def timeless(records: list[dict]) -> list[dict]:
    """Records in file order, without the wall-clock field."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_two_ranks_share_the_requests_and_rank_0_gathers_them_in_request_order(
    tmp_path, monkeypatch
) -> None:
    """The two ranks of a world of 2 played one after the other in this process (their barriers
    and rank 0's broadcast do nothing here): rank 1 decodes requests 1, 3; rank 0 decodes 0, 2,
    4, folds rank 1's file into records.jsonl in request order and answers every request as one
    process does, sampled outputs included; loglikelihood requests are scored by rank 0 alone."""
    overrides = [*TINY, "temperature=2.0", "mc_samples=2"]
    single = NclbLM(config=compose_evaluation([*overrides, f"out_dir={tmp_path}/one"]))
    prompts = [ex.prompt for ex in single.task.examples(5)]
    requests = [instance(p, [";"] if i % 2 else [], i) for i, p in enumerate(prompts)]
    choices = [
        Instance("loglikelihood", {}, (p, " 7"), 0, ("mc", i, 1)) for i, p in enumerate(prompts[:2])
    ]
    try:
        expected = single.generate_until(requests), single.loglikelihood(choices)
    finally:
        single.close()
    one = read_records(next((tmp_path / "one").rglob(RECORDS)))

    monkeypatch.setattr(Shard, "barrier", lambda self: None)
    monkeypatch.setattr(Shard, "from_leader", lambda self, value: value)
    config = compose_evaluation([*overrides, f"out_dir={tmp_path}/two"])
    ranks = []
    for rank in (0, 1):
        shard = Shard(rank=rank, world=2, local_rank=rank)
        monkeypatch.setattr("nclb.lmeval.adapter.join", lambda shard=shard: shard)
        ranks.append(NclbLM(config=config))
    leader, other = ranks
    try:
        assert other.generate_until(requests) == ["", "", "", "", ""]  # not gathered on rank 1
        [rank_file] = shard_files(other.folder)
        assert [r["doc_id"] for r in read_records(rank_file)] == [1, 3]
        assert leader.generate_until(requests) == expected[0]
        assert leader.shard.decoded == [3, 2] and not shard_files(leader.folder)

        def no_scoring(*args, **kwargs):
            raise AssertionError("a rank other than 0 scored a loglikelihood request")

        with monkeypatch.context() as patch:
            patch.setattr("nclb.lmeval.adapter.mdlm_loglikelihood", no_scoring)
            other.loglikelihood(choices)
        assert leader.loglikelihood(choices) == expected[1]
    finally:
        other.close()
        leader.close()
    assert timeless(read_records(leader.folder / RECORDS)) == timeless(one)


def test_lm_eval_under_torchrun_exits_0_on_both_ranks_and_equals_one_process(
    tmp_path, capsys
) -> None:
    """`torchrun --nproc_per_node 2 -m nclb lm-eval ...` on CPU: both ranks exit 0 and print
    rank 0's scores, each decoded half of the requests, and records, lm-eval's samples and
    results equal one process's."""
    args = ["tasks=nclb_arith", *TINY, "temperature=2.0", "limit=6"]
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run += ["-m", "nclb", "lm-eval", *args, f"out_dir={tmp_path}/two"]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cli.main(["lm-eval", *args, f"out_dir={tmp_path}/one"])
    scores = [line for line in capsys.readouterr().out.splitlines() if "exact_match" in line]
    assert len(scores) == 2
    for line in scores:
        assert line in done.stdout.splitlines() and f"rank 1: {line}" in done.stdout, line
    assert "rank 1: rank 0 wrote" in done.stdout
    [two] = [p.parent for p in (tmp_path / "two").rglob(SUMMARY)]
    one = tmp_path / "one" / two.relative_to(tmp_path / "two")
    summary = json.loads((two / SUMMARY).read_text())
    assert summary["processes"] == {"world_size": 2, "decoded_per_rank": [3, 3]}
    assert json.loads((one / SUMMARY).read_text())["processes"]["world_size"] == 1
    assert not shard_files(two)
    assert timeless(read_records(two / RECORDS)) == timeless(read_records(one / RECORDS))
    assert (two / SAMPLES).read_text() == (one / SAMPLES).read_text()
    results = [json.loads((folder / RESULTS).read_text()) for folder in (two, one)]
    assert results[0]["results"] == results[1]["results"]
    assert results[0]["config"]["device"] == "cpu"


def test_lm_eval_model_args_path_registers_nclb(tmp_path) -> None:
    """lm-eval's own entry (`--model nclb --model_args ...`) once nclb.lmeval is imported."""
    manager = TaskManager(include_path=str(local_task_dir()), include_defaults=False)
    args = f"model=tiny,task=arith,decoder=ktoken,k=1,device=cpu,out_dir={tmp_path}"
    results = simple_evaluate(
        model="nclb", model_args=args, tasks=["nclb_arith"], limit=2, task_manager=manager
    )
    assert results["results"]["nclb_arith"]["exact_match,strict-match"] == 1.0
    assert len(read_records(next(tmp_path.rglob(RECORDS)))) == 2


def test_model_args_device_wins_over_lm_evals_device_flag(tmp_path) -> None:
    """`--model_args device=cpu` beside lm-eval's own `--device cuda:0` (its command line's
    default) builds the model on the device model_args names, with no clash of arguments."""
    args = f"model=tiny,task=arith,decoder=ktoken,k=1,device=cpu,batch_size=2,out_dir={tmp_path}"
    lm = NclbLM.create_from_arg_string(args, {"device": "cuda:0", "batch_size": 8})
    assert str(lm.device) == "cpu"
    assert lm.settings.batch_size == 2


def test_mdlm_loglikelihood_exact_for_one_token_and_seeded(tmp_path) -> None:
    lm = NclbLM(config=compose_evaluation([*TINY, f"out_dir={tmp_path}"]))
    model = lm.model
    try:
        example = lm.task.examples(1)[0]
        prompt = model.prompt_ids(example.prompt)
        region = lm.task.gold_region(example, model, lm.settings.gen_length)
        with torch.no_grad():
            ids = torch.tensor([prompt + [model.mask_id]])
            exact = torch.log_softmax(model.logits(ids)[0, -1].float(), -1)
        token = int(exact.argmax())
        gen = torch.Generator().manual_seed(0)
        (one, greedy), (empty, empty_greedy) = mdlm_loglikelihood(
            model, [prompt, prompt], [[token], []], 4, gen
        )
        assert one == pytest.approx(float(exact[token]), abs=1e-5) and greedy
        assert (empty, empty_greedy) == (0.0, True)
        # Many tokens: a seeded estimate (same seed, same number), finite and <= 0.
        a = mdlm_loglikelihood(model, [prompt], [region], 8, torch.Generator().manual_seed(1))
        b = mdlm_loglikelihood(model, [prompt], [region], 8, torch.Generator().manual_seed(1))
        assert a == b and math.isfinite(a[0][0]) and a[0][0] <= 0
        with pytest.raises(UserError, match="loglikelihood_rolling"):
            lm.loglikelihood_rolling([])
    finally:
        lm.close()


def test_missing_extra_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval now fails
    with pytest.raises(SystemExit) as exit_:
        cli.main(["lm-eval", "tasks=nclb_arith"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "\n" not in err
    assert "pip install 'nclb[lmeval]'" in err


HUB_TASK = """task: hub_arc
dataset_path: allenai/ai2_arc
dataset_name: ARC-Easy
output_type: generate_until
test_split: test
doc_to_text: "{{question}}"
doc_to_target: "{{answerKey}}"
generation_kwargs:
  until: []
"""


def test_hub_task_offline_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    """A task whose data is on the hub fails, without the hub, with what to download."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The hub libraries read HF_HUB_OFFLINE once, on import (already done here): without these
    # the download is tried, and retried with back-off for about 20 s before it fails.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no cached copy
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "hub_arc.yaml").write_text(HUB_TASK)
    with pytest.raises(SystemExit):
        cli.main(["lm-eval", "tasks=hub_arc", f"include_path={tmp_path}/tasks", *TINY])
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "huggingface-cli download --repo-type dataset allenai/ai2_arc" in err, err


def test_unknown_task_message() -> None:
    err = task_error(KeyError("Spec 'nope' is not a registered task/group/tag name"), ["nope"])
    assert "does not know a task in tasks=['nope']" in str(err) and "nclb_gsm8k" in str(err)
    with pytest.raises(UserError, match="name the nclb task whose layout"):
        compose_evaluation(["tasks=arc_easy"])  # a foreign task needs an explicit task=


def test_chat_model_foreign_task_goes_through_the_chat_template(tmp_path, monkeypatch) -> None:
    """A context that is not an nclb example (an lm-eval task nclb does not ship) on a LLaDA
    stand-in: chat template, plain layout, one queue per prompt length (no padding), equal to
    the sampler called directly; loglikelihood requests are scored too."""
    from nclb.models.standin import build_standin
    from nclb.sampler import generate
    from nclb.tasks.template import plain_canvas

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = build_standin("llada", tmp_path / "llada", kv_heads=2)
    overrides = [
        "model=llada",
        f"model.path={folder}",
        "task=gsm8k",
        "task.template=plain",
        "gen_length=6",
        "block=6",
        "decoder=ktoken",
        "k=1",
        "device=cpu",
        f"out_dir={tmp_path}/out",
        "mc_samples=2",
    ]
    lm = NclbLM(config=compose_evaluation(overrides))
    try:
        contexts = ["Is the sky blue?", "Two plus two?", "Is grass green?"]
        responses = lm.generate_until([instance(c, [], i) for i, c in enumerate(contexts)])
        model, s = lm.model, lm.settings
        assert model.prompt_ids(contexts[0]) != model.codec.encode(contexts[0])  # templated
        for context, response in zip(contexts, responses):
            canvas = plain_canvas(model.prompt_ids(context), model.mask_id, 6)
            (gen,) = generate(model, [canvas], s.decoder, s.sampler)
            assert response == model.codec.decode(gen.region)
        choice = Instance("loglikelihood", {}, ("Is the sky blue?", " yes"), 0, ("mc", 0, 1))
        ((logprob, greedy),) = lm.loglikelihood([choice])
        assert math.isfinite(logprob) and logprob <= 0 and isinstance(greedy, bool)
    finally:
        lm.close()
    records = read_records(next((tmp_path / "out").rglob(RECORDS)))
    assert [r["nfe"] for r in records if r["request"] == "generate_until"] == [6, 6, 6]
    assert [r["nfe"] for r in records if r["request"] == "loglikelihood"] == [3]


def test_sweep_runs_each_combination(tmp_path, capsys) -> None:
    cli.main(
        [
            "lm-eval",
            "-m",
            "tasks=nclb_arith",
            *TINY,
            "lam=0.0,0.5",
            "limit=2",
            f"out_dir={tmp_path}",
        ]
    )
    folders = sorted(p.parent for p in tmp_path.rglob(SUMMARY))
    assert len(folders) == 2
    assert [len(read_records(f / RECORDS)) for f in folders] == [2, 2]
    assert capsys.readouterr().out.count("nclb's own scorer") == 2


def test_help_lists_the_lm_eval_keys(capsys) -> None:
    cli.main(["lm-eval", "--help"])
    text = capsys.readouterr().out
    assert "usage: nclb lm-eval" in text and "  mc_samples=32" in text and "  tasks=" in text


def test_crosscheck_counts_and_lists_disagreements() -> None:
    from nclb.tables.lmeval_crosscheck import compare, note_line

    records = {
        f"t/{i}/0": {
            "example_id": f"ex-{i}",
            "gold": "18",
            "prediction": p,
            "correct": ok,
            "output": o,
        }
        for i, (p, ok, o) in enumerate([("18", True, "is 18"), ("18", True, "is \\boxed{18}")])
    }
    samples = [
        {
            "task": "t",
            "doc_id": 0,
            "filter": "strict",
            "filtered_resps": ["18"],
            "metrics": {"em": 1.0},
        },
        {
            "task": "t",
            "doc_id": 1,
            "filter": "strict",
            "filtered_resps": ["[invalid]"],
            "metrics": {"em": 0.0},
        },
    ]
    outputs = {"cfg": {"model": {"name": "reference"}}, "records": records, "samples": samples}
    rows, disagreements = compare("setup", outputs)
    assert len(rows) == 1 and rows[0]["rule"] == "em (strict)"
    assert (rows[0]["agree"], rows[0]["only_nclb_right"], rows[0]["only_lm_eval_right"]) == (
        1,
        1,
        0,
    )
    assert [d["example_id"] for d in disagreements] == ["ex-1"]
    assert "ex-1" in note_line(disagreements[0]) and "[invalid]" in note_line(disagreements[0])
