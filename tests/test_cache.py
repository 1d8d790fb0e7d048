"""The key/value cache: cache=none is today's decoding, a refresh pass is a full pass, a cached
pass reads the stale keys and values it should, and outputs do not depend on the batching."""

from __future__ import annotations

import json

import pytest
import torch

from greedy_outputs import GOLDEN, SETTINGS, as_text, key, outputs, workload


@pytest.mark.parametrize(
    ("task", "limit", "overrides"), SETTINGS, ids=[key(t, o) for t, n, o in SETTINGS]
)
def test_cache_none_gives_the_logged_greedy_outputs_of_every_decoder(task, limit, overrides):
    golden = json.loads(GOLDEN.read_text())[key(task, overrides)]
    got = [as_text(r) for r in outputs(task, limit, [*overrides, "cache=none"])]
    assert got == golden


@pytest.fixture(scope="module")
def tiny():
    from nclb.models.hf import load_hf_model

    torch.manual_seed(0)
    return load_hf_model({"family": "tiny", "path": "checkpoints/tiny-chain", "device": "cpu"})


def rows(model, n: int = 3, width: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids [n, width] (the second row left-padded by 5) and their attention mask."""
    ids = torch.randint(3, 50, (n, width), generator=torch.Generator().manual_seed(1))
    real = torch.ones_like(ids, dtype=torch.bool)
    real[1, :5] = False
    return ids.masked_fill(~real, model.pad_id), real


def test_a_refresh_pass_gives_the_full_pass_logits_on_the_tiny_model(tiny):
    ids, real = rows(tiny)
    columns = torch.tensor([[30, 31, 35, 39], [10, 12, 20, 21], [0, 1, 2, 3]])
    full = tiny.logits(ids, real)
    refreshed, cache = tiny.cached_forward(ids, real, columns, None)
    want = full.gather(1, columns[..., None].expand(-1, -1, full.shape[-1]))
    assert (refreshed - want).abs().max() <= 1e-4
    assert cache.width == ids.shape[1] and len(cache.keys) == tiny.model.config.num_hidden_layers
    again, _ = tiny.cached_forward(ids, real, columns, cache)
    assert (again - want).abs().max() <= 1e-4


def stale_reference(model, old: torch.Tensor, new: torch.Tensor, real, columns) -> torch.Tensor:
    """Logits at `columns` of `new` when every other column keeps what the full pass over `old`
    computed: each block's input outside `columns` is replaced by its input in that pass (so
    its keys and values are the stale ones), written with forward hooks, not the cache code."""
    blocks = model.model.blocks
    seen: list[torch.Tensor] = []
    hooks = [b.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone())) for b in blocks]
    model.logits(old, real)
    for h in hooks:
        h.remove()
    keep = torch.zeros_like(real)
    keep.scatter_(1, columns, True)

    def swap(i):
        def hook(module, args):
            x = torch.where(keep.unsqueeze(-1), args[0], seen[i])
            return (x, *args[1:])

        return hook

    hooks = [b.register_forward_pre_hook(swap(i)) for i, b in enumerate(blocks)]
    try:
        out = model.logits(new, real)
    finally:
        for h in hooks:
            h.remove()
    return out.gather(1, columns[..., None].expand(-1, -1, out.shape[-1]))


def test_a_cached_pass_reads_the_stale_keys_and_values_outside_its_columns(tiny):
    old, real = rows(tiny)
    columns = torch.tensor([[30, 33, 35, 39], [10, 12, 20, 21], [5, 1, 2, 7]]).sort(1).values
    new = old.clone()
    new.scatter_(1, columns[:, :2], 7)  # tokens change at the recomputed columns
    new[:, 25] = 9  # ... and at one the cache holds: a cached pass does not see it
    _, cache = tiny.cached_forward(old, real, columns, None)
    cached, _ = tiny.cached_forward(new, real, columns, cache)
    want = stale_reference(tiny, old, new, real, columns)
    assert (cached - want).abs().max() <= 1e-4
    fresh = tiny.logits(new, real, columns)
    assert (cached - fresh).abs().max() > 1e-3  # the stale columns do matter


CACHED = ["decoder=med", "lam=0.2", "gamma=0.1", "cache=dual"]


def test_cached_greedy_outputs_do_not_depend_on_the_batching():
    from nclb.runs.runner import decode

    s, model, canvases = workload("chain", 12, CACHED)

    def regions(batch: int, continuous: bool = True) -> list[list[int]]:
        gens = decode(model, canvases, s.decoder, s.sampler, batch, continuous=continuous)
        return [g.region for g in gens]

    one = regions(1)
    assert regions(12) == one
    assert regions(5) == one  # rows join and leave at different blocks
    assert regions(5, continuous=False) == one


def test_early_exit_with_the_cache_recomputes_the_answer_block_at_every_pass(tiny):
    from nclb.config.compose import compose
    from nclb.sampler import SamplerConfig, build_decoder, generate
    from nclb.sampler.cache import CacheConfig
    from nclb.tasks.build import build_task

    task = build_task(compose("config", [])["task"])
    examples = task.examples(4)
    canvases = [task.canvas(ex, tiny, 64) for ex in examples]
    start, end = canvases[0].answer
    calls: list[tuple[torch.Tensor, bool]] = []
    served = tiny.cached_forward

    class Watch:
        cached_forward = None

        def __getattr__(self, name):
            return getattr(tiny, name)

    def watching(ids, real, columns, cache):
        calls.append((columns - ids.shape[1] + 64, cache is None))
        return served(ids, real, columns, cache)

    watch = Watch()
    watch.cached_forward = watching
    cfg = SamplerConfig(block=8, gamma=0.1, cache=CacheConfig("dual"))
    generate(watch, canvases, build_decoder("med", lam=0.2), cfg, batch_size=4)
    assert any(not refresh for _, refresh in calls)
    for offsets, _ in calls:
        for row in offsets.tolist():
            assert set(range(start, end)) <= set(row)


def test_a_cache_asked_of_a_model_without_one_is_one_line_before_anything_runs(tmp_path):
    from nclb.config.compose import compose
    from nclb.config.settings import resolve
    from nclb.errors import UserError

    with pytest.raises(UserError, match=r"^cache=dual needs a model with a key/value cache"):
        resolve(compose("config", ["model=oracle", "task=toy", "cache=dual"]))
    with pytest.raises(UserError, match=r"^cache.refresh=0 must be an integer >= 1 or block"):
        resolve(compose("config", ["cache=prefix", "cache.refresh=0"]))


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_the_tiny_head_computes_no_logits_for_prompt_positions(tiny, cache):
    from nclb.config.compose import compose
    from nclb.sampler import SamplerConfig, build_decoder, generate
    from nclb.sampler.cache import CacheConfig
    from nclb.tasks.build import build_task

    task = build_task(compose("config", [])["task"])
    canvases = [task.canvas(ex, tiny, 64) for ex in task.examples(3)]
    seen: list[int] = []
    hook = tiny.model.lm_head.register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape[0] * args[0].shape[1])
    )
    try:
        cfg = SamplerConfig(block=8, cache=CacheConfig(cache))
        gens = generate(tiny, canvases, build_decoder("ktoken", k=1), cfg, batch_size=3)
    finally:
        hook.remove()
    assert seen
    region = len(canvases[0].region)
    assert max(seen) <= 3 * region  # never a prompt position: at most every region position
    if cache == "none":
        assert seen == [3 * region] * gens[0].nfe  # the whole region of every row, each pass


def test_an_unknown_cache_mode_lists_the_modes():
    from nclb.config.compose import check_groups
    from nclb.errors import UserError

    with pytest.raises(
        UserError, match=r"^cache=Dual is unknown; choose one of \['dual', 'none', 'prefix'\]$"
    ):
        check_groups(["cache=Dual"])
