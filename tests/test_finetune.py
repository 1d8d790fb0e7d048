"""Fine-tuning on traces: response-only MDLM loss, data sources, LoRA, answer-only base data."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nclb.config import config_dir
from nclb.errors import UserError
from nclb.experiments.finetune import add_lora, collate, finetune, load_items
from nclb.experiments.train_tiny import _new_model, layout_view, make_batch
from nclb.models.hf import load_hf_model
from nclb.tasks.arith import ArithTask
from nclb.tiny.checkpoint import save_checkpoint
from nclb.tiny.tokenizer import build_tokenizer

SMALL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "absolute_positions": False,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    """A small untrained tiny-model checkpoint to fine-tune."""
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = _new_model(OmegaConf.create({"arch": SMALL}), tok)
    return save_checkpoint(model, tok, tmp_path_factory.mktemp("small") / "ckpt")


def config(tmp_path, *overrides):
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("finetune", overrides=[f"out_dir={tmp_path}", "eval.n=0", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def test_prompt_and_delimiter_are_never_targets():
    task, lm = ArithTask(), layout_view(build_tokenizer())
    items, counts = load_items({"gold_n": 6, "gold_source": "examples"}, task, lm, 48)
    assert counts["gold"] == 6
    ids, attn, maskable = collate(items, lm.pad_id)
    assert not maskable[:, :-48].any()  # prompt and padding
    region = maskable[:, -48:]
    assert region[:, :29].all() and not region[:, 29:44].any() and region[:, 44:].all()
    assert (ids[:, -48:] != lm.mask_id).all()


def test_trace_files_and_filters(tmp_path):
    task, lm = ArithTask(), layout_view(build_tokenizer())
    ex = task.examples(2)
    rows = []
    for i, (mode, lp, ok) in enumerate(
        [
            ("posterior", -0.1, True),
            ("posterior", -5.0, True),
            ("posterior", -0.1, False),
            ("prior", -0.1, True),
        ]
    ):
        e = ex[i % 2]
        region = task.gold_region(e, lm, 48)
        rows.append(
            {
                "id": e.id,
                "prompt": e.prompt,
                "gold": e.gold,
                "mode": mode,
                "answer_logprob": lp,
                "trace_ok": ok,
                "region_ids": region,
            }
        )
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {"traces": [str(path)], "min_answer_logprob": -1.0, "require_trace_ok": True}
    items, counts = load_items(data, task, lm, 48)
    assert counts == {"traces": 1, "gold": 0, "dropped": 2}
    assert items[0].region == rows[0]["region_ids"]
    _, counts = load_items({"traces": [str(path)], "trace_mode": "all"}, task, lm, 48)
    assert counts["traces"] == 4
    with pytest.raises(UserError, match="gen_length"):
        load_items({"traces": [str(path)]}, ArithTask(gen_length=50), lm, 50)


def test_finetune_lowers_the_loss_and_saves_a_loadable_checkpoint(tmp_path, small_ckpt):
    cfg = config(
        tmp_path,
        f"init={small_ckpt}",
        "data.gold_n=64",
        "optim.steps=40",
        "optim.lr=3e-3",
        "optim.batch_size=16",
        "log_every=10",
        "eval.n=4",
    )
    summary = finetune(cfg)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").open()]
    assert losses[-1] < 0.7 * losses[0]
    assert summary["examples"] == 64 and "accuracy" in summary["eval"]
    lm = load_hf_model({"family": "tiny", "path": str(tmp_path / "hf"), "device": "cpu"})
    before = load_hf_model({"family": "tiny", "path": str(small_ckpt), "device": "cpu"})
    changed = [
        not torch.equal(a, b)
        for a, b in zip(lm.model.state_dict().values(), before.model.state_dict().values())
    ]
    assert any(changed)


def test_missing_peft_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(UserError, match="pip install 'nclb\\[lora\\]'"):
        add_lora(layout_view(build_tokenizer()), {"target_modules": ["qkv"]})


def test_lora_trains_adapters_only_and_merges(tmp_path, small_ckpt):
    pytest.importorskip("peft")
    cfg = config(
        tmp_path,
        f"init={small_ckpt}",
        "data.gold_n=16",
        "optim.steps=3",
        "optim.lr=1e-2",
        "optim.batch_size=8",
        "lora.enabled=true",
    )
    finetune(cfg)
    after = load_hf_model({"family": "tiny", "path": str(tmp_path / "hf"), "device": "cpu"})
    before = load_hf_model({"family": "tiny", "path": str(small_ckpt), "device": "cpu"})
    a, b = after.model.state_dict(), before.model.state_dict()
    assert set(a) == set(b)  # merged: no adapter weights left
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(k.endswith(("qkv.weight", "out.weight")) for k in changed)


def test_answer_only_chains_keep_a_masked_scratchpad():
    """trace_max_steps: longer chains train on the answer only (Table 4's base model)."""
    task = ArithTask(trace_max_steps=2)
    lm = layout_view(build_tokenizer())
    examples = task.generate(40, seed=5)
    ids, _, maskable = make_batch(task, lm, examples, 48)
    for row, ex in enumerate(examples):
        region, can = ids[row, -48:], maskable[row, -48:]
        if len(ex.meta["steps"]) > 2:
            assert (region[:29] == lm.mask_id).all() and not can[:29].any() and can[44:].all()
        else:
            assert (region != lm.mask_id).all() and can[:29].all()
    assert {len(ex.meta["steps"]) for ex in examples} == {2, 3}
