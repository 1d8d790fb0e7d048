"""Training the tiny MDLM: the objective learns, and runs resume where they stopped."""

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nclb.errors import UserError
from nclb.experiments.train_tiny import (
    _new_model,
    layout_view,
    make_batch,
    mdlm_loss,
    train,
    training_view,
)
from nclb.tasks.arith import ArithTask
from nclb.tiny.tokenizer import build_tokenizer
from nclb.training.schedule import lr_factor

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = [
    "arch.hidden_size=32",
    "arch.num_hidden_layers=2",
    "arch.num_attention_heads=2",
    "arch.intermediate_size=64",
    "optim.batch_size=16",
    "eval_n=4",
]


def config(tmp_path: Path, *overrides: str):
    with initialize_config_dir(str(CONFIGS), version_base=None):
        return compose("train", overrides=[*SMALL, f"out_dir={tmp_path}", *overrides])


def test_a_few_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    cfg = config(tmp_path, "task=arith")
    tok = build_tokenizer()
    model = _new_model(cfg, tok)
    lm, task = training_view(model, tok), ArithTask()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    stream, gen = task.train_stream(seed=0), torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        ids, attn, maskable = make_batch(task, lm, [next(stream) for _ in range(16)], 48)
        loss, _ = mdlm_loss(model, ids, attn, maskable, lm.mask_id, 1e-3, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:4]) / 4


def test_prompt_and_delimiter_are_never_masked():
    tok = build_tokenizer()
    task = ArithTask()
    lm = layout_view(tok)
    ids, attn, maskable = make_batch(task, lm, task.examples(4), 48)
    assert not (maskable & ~attn).any()
    region = maskable[:, -48:]
    assert region[:, :29].all() and not region[:, 29:44].any() and region[:, 44:].all()
    assert not maskable[:, :-48].any()


def test_schedule_warms_up_then_decays():
    assert lr_factor(0.0, 0.1, 0.1) == 0.0
    assert lr_factor(0.1, 0.1, 0.1) == 1.0
    assert abs(lr_factor(1.0, 0.1, 0.1) - 0.1) < 1e-9


def test_train_saves_and_resumes(tmp_path):
    first = train(config(tmp_path, "task=arith", "optim.steps=4", "eval_every=2"))
    assert (first / "model.safetensors").is_file() and (tmp_path / "state.pt").is_file()
    assert torch.load(tmp_path / "state.pt", weights_only=False)["step"] == 4
    export = tmp_path / "export"
    train(config(tmp_path, "task=arith", "optim.steps=6", "eval_every=5", f"export_dir={export}"))
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [2, 4, 5, 6]
    assert (export / "config.json").is_file() and not (export / "state.pt").exists()


def test_init_starts_from_a_checkpoint_with_a_fresh_schedule(tmp_path):
    from nclb.tiny.checkpoint import load_checkpoint

    base = train(config(tmp_path / "base", "task=arith", "optim.steps=2", "eval_every=2"))
    start, _ = load_checkpoint(base)
    cont = tmp_path / "cont"
    # arch keys that disagree with the checkpoint are ignored: its own config wins
    out = train(
        config(
            cont, "task=arith", f"init={base}", "optim.steps=2", "optim.lr=0", "arch.hidden_size=48"
        )
    )
    assert torch.load(cont / "state.pt", weights_only=False)["step"] == 2
    after, _ = load_checkpoint(out)
    assert after.config.hidden_size == 32
    for name, weight in start.state_dict().items():  # lr 0: the weights are the checkpoint's
        assert torch.equal(weight, after.state_dict()[name]), name


def test_init_from_a_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="init="):
        train(config(tmp_path, "task=arith", f"init={tmp_path / 'nope'}", "optim.steps=1"))


def test_worker_zero_draws_the_in_process_stream():
    from nclb.experiments.train_tiny import _BatchStream

    task, tok = ArithTask(), build_tokenizer()
    lm = layout_view(tok)
    stream = task.train_stream(5)
    expected = make_batch(task, lm, [next(stream) for _ in range(8)], 48)
    got = next(iter(_BatchStream(task, tok, 5, 8, 48)))
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)


def test_training_with_batch_workers(tmp_path):
    train(config(tmp_path, "task=arith", "optim.steps=3", "eval_every=3", "workers=2"))
    assert torch.load(tmp_path / "state.pt", weights_only=False)["step"] == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="device=cuda"):
        train(config(tmp_path, "task=arith", "device=cuda", "optim.steps=1"))


class RecordingModel(torch.nn.Module):
    """Returns fixed logits and remembers the ids it was given."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.seen: torch.Tensor | None = None

    def forward(self, ids, attention_mask=None):
        self.seen = ids.clone()
        logits = torch.zeros(*ids.shape, self.vocab, requires_grad=True)
        return type("Out", (), {"logits": logits})()


def test_corrupt_replaces_visible_tokens_with_tokens_of_the_same_row():
    tok = build_tokenizer()
    task = ArithTask()
    lm = layout_view(tok)
    ids, attn, maskable = make_batch(task, lm, task.examples(16), 48)
    model = RecordingModel(len(tok))
    gen = torch.Generator().manual_seed(0)
    clean, _ = mdlm_loss(model, ids, attn, maskable, lm.mask_id, 1e-3, gen, 0.5)
    seen = model.seen
    assert ((seen == ids) | (seen == lm.mask_id)).all()  # corrupt=0: only masks
    gen = torch.Generator().manual_seed(0)
    noisy, _ = mdlm_loss(model, ids, attn, maskable, lm.mask_id, 1e-3, gen, 0.5, corrupt=0.5)
    seen = model.seen
    changed = (seen != ids) & (seen != lm.mask_id)
    assert changed.any() and not (changed & ~maskable).any()  # prompt/delimiter never touched
    for row in range(len(ids)):
        assert set(seen[row][changed[row]].tolist()) <= set(ids[row][maskable[row]].tolist())
    # Uniform logits: every target costs log V, so the visible targets add to the loss.
    assert noisy.item() > clean.item()


def test_only_tasks_with_a_training_stream_can_be_trained():
    from nclb.tasks.base import Trainable, class_implements
    from nclb.tasks.build import build_trainable_task, trainable_names

    assert {"arith", "chain", "sudoku9"} <= set(trainable_names())
    assert not {"gsm8k", "math", "humaneval", "sudoku"} & set(trainable_names())

    class StreamOnly:  # gold_region missing: not Trainable
        def train_stream(self, seed): ...

    assert not class_implements(StreamOnly, Trainable) and class_implements(ArithTask, Trainable)
    with pytest.raises(UserError, match="task='gsm8k' cannot be trained on"):
        build_trainable_task({"name": "gsm8k"})


def test_the_weightless_layout_view_lays_out_batches_like_the_training_view(tmp_path):
    tok, task = build_tokenizer(), ArithTask()
    layout = layout_view(tok)
    assert all(p.is_meta for p in layout.model.parameters())  # no memory in batch workers
    trained = training_view(_new_model(config(tmp_path, "task=arith"), tok), tok)
    assert trained.model.training  # the view leaves the model in training mode
    examples = task.examples(8)
    for a, b in zip(
        make_batch(task, layout, examples, 48), make_batch(task, trained, examples, 48)
    ):
        assert torch.equal(a, b)
