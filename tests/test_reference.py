"""The reference model scores (nearly) 100% through a minimal decode and each task's scorer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from nclb.models.reference import EOS_ID, MASK_ID, ReferenceModel
from nclb.tasks.base import Score
from nclb.tasks.gsm8k import GSM8kTask
from nclb.tasks.humaneval import HumanEvalTask
from nclb.tasks.mathtask import MathTask
from nclb.tasks.sudoku4 import SudokuTask
from nclb.types import Canvas, Example

ROOT = Path(__file__).resolve().parents[1]
REF = OmegaConf.to_container(OmegaConf.load(ROOT / "configs/model/reference.yaml"))


def task_config(name: str, **overrides) -> dict:
    """The task YAML as a plain dict, with the reference model's overrides applied."""
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / f"configs/task/{name}.yaml"), resolve=True)
    if cfg.get("answer_length"):
        cfg["answer_length"] = REF["answer_length"]
    return {**cfg, "gen_length": REF["gen_length"], **overrides}


def split_region(
    canvas: Canvas, region: list[int], model: ReferenceModel
) -> tuple[str, str | None]:
    """(text before the delimiter, answer block text) of a decoded region, as the runner does."""
    if canvas.answer is None:
        return model.codec.decode(region), None
    start, stop = canvas.answer
    delim = start
    while delim > 0 and canvas.region[delim - 1] != MASK_ID:
        delim -= 1
    return model.codec.decode(region[:delim]), model.codec.decode(region[start:stop])


def argmax_decode(task, examples: list[Example], gen_length: int, batch: int = 16):
    """One forward pass per batch (left padded); argmax fills every masked region position."""
    model = ReferenceModel.for_task(task, examples, gen_length)
    outputs = []
    for lo in range(0, len(examples), batch):
        canvases = [task.canvas(ex, model, gen_length) for ex in examples[lo : lo + batch]]
        rows = [c.prompt + c.region for c in canvases]
        width = max(map(len, rows))
        ids = torch.tensor([[model.pad_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows])
        pred = model.logits(ids, mask).argmax(-1)
        for b, canvas in enumerate(canvases):
            region = ids[b, width - gen_length :].clone()
            masked = region == MASK_ID
            region[masked] = pred[b, width - gen_length :][masked]
            outputs.append(split_region(canvas, region.tolist(), model))
    return outputs, model


def accuracy(task, examples: list[Example], gen_length: int) -> tuple[list[Score], ReferenceModel]:
    """Scores of the argmax-decoded reference outputs."""
    outputs, model = argmax_decode(task, examples, gen_length)
    if isinstance(task, HumanEvalTask):
        return task.score_many(
            [(ex, r, a) for ex, (r, a) in zip(examples, outputs, strict=True)]
        ), model
    return [task.score(ex, r, a) for ex, (r, a) in zip(examples, outputs, strict=True)], model


@pytest.mark.parametrize("template", ["infilling", "plain"])
def test_gsm8k_reference_scores_100(template):
    task = GSM8kTask.from_config(task_config("gsm8k", template=template))
    scores, model = accuracy(task, task.examples(), REF["gen_length"])
    assert len(scores) == 1319 and all(s.correct for s in scores) and not model.cut
    assert all(s.detail["strict_correct"] for s in scores)


@pytest.mark.parametrize("template", ["infilling", "plain"])
def test_math500_reference_scores_at_least_99(template):
    task = MathTask.from_config(task_config("math", template=template))
    scores, _ = accuracy(task, task.examples(), REF["gen_length"])
    assert len(scores) == 500 and sum(s.correct for s in scores) >= 495


@pytest.mark.parametrize("source,template", [("d1", "infilling"), ("d1", "plain"), ("dream", None)])
def test_sudoku_reference_scores_100(source, template):
    task = SudokuTask.from_config(task_config("sudoku", source=source, template=template))
    scores, _ = accuracy(task, task.examples(), REF["gen_length"])
    assert len(scores) == (500 if source == "d1" else 100) and all(s.correct for s in scores)


@pytest.mark.parametrize("template", ["infilling", pytest.param("plain", marks=pytest.mark.slow)])
def test_humaneval_reference_all_164_pass(template):
    task = HumanEvalTask.from_config(task_config("humaneval", template=template))
    scores, model = accuracy(task, task.examples(), REF["gen_length"])
    assert len(scores) == 164 and not model.cut
    assert all(s.correct for s in scores), [s.detail for s in scores if not s.correct]


def test_reference_output_scores_directly():
    """task.score on reference_output, without the model (default task settings)."""
    for task in (GSM8kTask(), MathTask(answer_length=64), SudokuTask(), HumanEvalTask()):
        examples = task.examples(limit=20)
        items = [(ex, *task.reference_output(ex)) for ex in examples]
        if isinstance(task, HumanEvalTask):
            assert all(s.correct for s in task.score_many(items))
        else:
            assert all(task.score(*item).correct for item in items), task.name


def test_logits_one_hot_and_protocol():
    task = SudokuTask(answer_length=32)
    examples = task.examples(limit=2)
    model = ReferenceModel.for_task(task, examples, 64)
    canvas = task.canvas(examples[0], model, 64)
    ids = torch.tensor([canvas.prompt + canvas.region])
    logits = model.logits(ids)
    assert logits.shape == (1, ids.shape[1], model.vocab_size)
    top = logits[0].argmax(-1)
    assert top[: len(canvas.prompt)].tolist() == canvas.prompt
    assert EOS_ID in top.tolist() and MASK_ID not in top.tolist()
    with pytest.raises(KeyError, match="for_task"):
        model.logits(torch.tensor([model.codec.encode("unknown prompt") + [MASK_ID] * 64]))


def test_math_full_subset_reference_scores_100():
    task = MathTask.from_config({"subset": "full"})
    examples = task.examples()
    assert len(examples) == 5000
    assert all(task.score(ex, *task.reference_output(ex)).correct for ex in examples)
