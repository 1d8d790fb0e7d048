"""The LLaDA / Dream / tiny adapters on random-weight stand-in checkpoints, offline."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from nclb.config.compose import compose
from nclb.models.hf import FAMILIES, ModelLoadError, dtype_keyword, load_hf_model
from nclb.models.standin import build_standin
from script_module import script

NO_GPU = not torch.cuda.is_available()


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("standins")
    return {f: build_standin(f, root / f, kv_heads=2) for f in ("llada", "dream")}


def load(folders, family: str, **cfg):
    return load_hf_model({"family": family, "path": str(folders[family]), "device": "cpu", **cfg})


def token(model, text: str) -> int:
    return model.tokenizer.convert_tokens_to_ids(text)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_standin_loads_with_ids_from_the_checkpoint(folders, family):
    model = load(folders, family)
    fam = FAMILIES[family]
    assert model.mask_id == token(model, fam.mask_token) < 256
    assert set(model.eos_ids) >= {token(model, t) for t in fam.eos_tokens}
    assert model.eos_ids[0] == token(model, "<|endoftext|>")
    assert model.pad_id == token(model, "<|endoftext|>")
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    ids = torch.tensor([model.prompt_ids("1+1=") + [model.mask_id] * 4] * 2)
    out = model.logits(ids)
    assert out.shape == (*ids.shape, model.vocab_size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_the_dtype_keyword_is_the_one_the_transformers_version_wants():
    assert dtype_keyword("4.49.0") == "torch_dtype"
    assert dtype_keyword("4.55.4") == "torch_dtype"
    assert dtype_keyword("4.56.0") == dtype_keyword("4.57.6") == "dtype"
    assert dtype_keyword("4.57.0.dev0") == "dtype"


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_standin_loads_in_bf16_without_a_transformers_warning(folders, family):
    """Whatever transformers 4.x is installed: the weights' dtype is passed under the keyword
    it wants (no `torch_dtype is deprecated` on 4.56+)."""
    from transformers.utils import logging as hf_logging

    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    root = hf_logging.get_logger("transformers")
    getattr(logging.Logger.warning_once, "cache_clear", lambda: None)()  # warn again if seen
    root.addHandler(handler)
    try:
        model = load(folders, family, dtype="bf16")
    finally:
        root.removeHandler(handler)
    assert model.dtype == torch.bfloat16
    assert not [m for m in messages if "dtype" in m], messages


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_yaml_mask_id_is_a_fallback_the_checkpoint_wins(folders, family, caplog):
    cfg = dict(compose("config", [f"model={family}", "task=gsm8k"])["model"])  # with common/
    assert cfg["family"] == family and cfg["mask_id"] in (126336, 151666)
    with caplog.at_level(logging.WARNING, logger="nclb.models.hf"):
        model = load_hf_model({**cfg, "path": str(folders[family]), "device": "cpu"})
    assert model.mask_id == token(model, FAMILIES[family].mask_token)
    assert f"model.mask_id={cfg['mask_id']} differs" in caplog.text


def test_dream_logits_are_shifted_right_by_one(folders):
    model = load(folders, "dream")
    ids = torch.randint(0, 100, (2, 12))
    raw = model.model(input_ids=ids).logits
    out = model.logits(ids)
    # Position i's prediction is the raw output at i-1 (position 0 copies itself).
    torch.testing.assert_close(out[:, 1:], raw[:, :-1])
    torch.testing.assert_close(out[:, 0], raw[:, 0])
    assert not torch.allclose(out[:, 1:], raw[:, 1:])


def test_llada_logits_are_not_shifted(folders):
    model = load(folders, "llada")
    ids = torch.randint(0, 100, (2, 12))
    torch.testing.assert_close(model.logits(ids), model.model(input_ids=ids).logits)


def test_llada_ignores_the_attention_mask_and_says_so(folders):
    """The released LLaDA code attends everywhere: a padding mask changes nothing, so left
    padding changes the logits of real tokens; the runner must batch equal-length prompts."""
    model = load(folders, "llada")
    assert model.supports_padding is False
    ids = torch.randint(0, 100, (2, 10))
    half = torch.ones(2, 10, dtype=torch.bool)
    half[1, :4] = False
    raw = model.model(input_ids=ids).logits
    torch.testing.assert_close(model.model(input_ids=ids, attention_mask=half).logits, raw)
    with pytest.warns(UserWarning, match="ignores the attention mask"):
        torch.testing.assert_close(model.logits(ids, half), raw)


def test_dream_left_padding_leaves_real_token_logits_unchanged(folders):
    model = load(folders, "dream")
    assert model.supports_padding is True
    short = model.prompt_ids("2+3=") + [model.mask_id] * 5
    long = model.prompt_ids("12+30=") + [model.mask_id] * 5
    pad = len(long) - len(short)
    ids = torch.tensor([[model.pad_id] * pad + short, long])
    real = torch.ones_like(ids, dtype=torch.bool)
    real[0, :pad] = False
    batched = model.logits(ids, real)
    alone = model.logits(torch.tensor([short]))
    torch.testing.assert_close(batched[0, pad + 1 :], alone[0, 1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], model.logits(torch.tensor([long]))[0])
    unmasked = model.logits(ids)
    assert not torch.allclose(unmasked[0, pad + 1 :], alone[0, 1:], atol=1e-3)


def test_tiny_family_loads_through_the_same_path(tmp_path):
    checkpoint = pytest.importorskip("nclb.tiny.checkpoint")
    from nclb.tiny.modeling_nclb_tiny import NclbTinyConfig, NclbTinyForMaskedLM
    from nclb.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer()
    cfg = NclbTinyConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    checkpoint.save_checkpoint(NclbTinyForMaskedLM(cfg), tok, tmp_path)
    model = load_hf_model({"family": "tiny", "path": str(tmp_path), "device": "cpu"})
    assert (model.mask_id, model.pad_id, model.eos_ids) == (1, 0, (2,))
    assert model.supports_padding and not model.use_chat_template
    assert model.prompt_ids("ab") == model.codec.encode("ab")
    ids = torch.tensor([[0, 0, 5, 6, 1], [7, 8, 5, 6, 1]])
    real = ids != 0
    out = model.logits(ids, real)
    torch.testing.assert_close(out[0, 2:], model.logits(ids[:1, 2:])[0], atol=1e-5, rtol=1e-5)


def test_chat_templates_are_applied_by_prompt_ids(folders):
    llada = load(folders, "llada")
    ids = llada.prompt_ids("Hi")
    header = [token(llada, t) for t in ("<|start_header_id|>", "<|end_header_id|>")]
    assert ids[0] == token(llada, "<|startoftext|>") and set(header) <= set(ids)
    assert token(llada, "<|eot_id|>") in ids
    tail = [header[0], *llada.codec.encode("assistant"), header[1], *llada.codec.encode("\n\n")]
    assert ids[-len(tail) :] == tail
    dream = load(folders, "dream")
    ids = dream.prompt_ids("Hi")
    assert ids.count(token(dream, "<|im_start|>")) == 3
    tail = [token(dream, "<|im_start|>"), *dream.codec.encode("assistant\n")]
    assert ids[-len(tail) :] == tail
    plain = load(folders, "llada", chat_template=False)
    assert plain.prompt_ids("Hi") == [token(plain, "<|startoftext|>"), *plain.codec.encode("Hi")]


def test_suppress_eos_sets_every_eos_logit_to_minus_inf(folders):
    model = load(folders, "llada", suppress_eos=True)
    out = model.logits(torch.randint(0, 100, (1, 6)))
    eos = list(model.eos_ids)
    assert len(eos) == 2 and torch.isneginf(out[..., eos]).all()
    keep = torch.ones(out.shape[-1], dtype=torch.bool)
    keep[eos] = False
    assert torch.isfinite(out[..., keep]).all()


def test_decode_drops_special_tokens(folders):
    model = load(folders, "llada")
    ids = model.codec.encode("x = 4") + [
        token(model, "<|eot_id|>"),
        model.mask_id,
        model.eos_ids[0],
    ]
    assert model.codec.decode(ids) == "x = 4"
    assert (
        model.codec.strip_special("The answer is 4<|eot_id|><|endoftext|><|mdm_mask|>")
        == "The answer is 4"
    )


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, ValueError)
    return text


def test_missing_local_path_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_hf_model({"family": "llada", "path": str(tmp_path / "absent")})
    assert "model.path=" in one_line(err)


def test_hub_id_not_in_the_cache_says_how_to_download():
    with pytest.raises(ModelLoadError) as err:
        load_hf_model({"family": "llada", "path": "nclb-tests/absent-model", "device": "cpu"})
    text = one_line(err)
    assert "not found locally" in text
    assert "huggingface-cli download nclb-tests/absent-model" in text
    assert "model.path=/local/folder" in text


@pytest.mark.skipif(not NO_GPU, reason="a GPU is visible")
def test_cuda_without_gpu_is_a_one_line_error(folders):
    with pytest.raises(ModelLoadError) as err:
        load(folders, "llada", device="cuda")
    assert one_line(err) == (
        "device=cuda requested but no CUDA GPU is visible; use device=cpu or device=auto"
    )


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"family": "gpt"}, "model.family='gpt' is unknown"),
        ({"dtype": "int8"}, "model.dtype='int8'"),
        ({"chat_template": "yes"}, "model.chat_template='yes'"),
        ({"supress_eos": True}, "model.supress_eos is not a model key"),
        ({"trust_remote_code": False}, "trust_remote_code=true"),
    ],
)
def test_bad_settings_are_one_line_errors(folders, cfg, needle):
    with pytest.raises(ModelLoadError) as err:
        load_hf_model({"family": "llada", "path": str(folders["llada"]), **cfg})
    assert needle in one_line(err)


def test_gpu_check_small_runs(capsys):
    gpu_check = script("gpu_check")
    args = ["--small", "--family", "dream", "--seq", "16", "--batches", "1,2"]
    gpu_check.main([*args, "--warmup", "1", "--reps", "1"])
    out = capsys.readouterr().out
    assert "load path: ok" in out
    assert len([line for line in out.splitlines() if line.lstrip()[:1].isdigit()]) == 3


@pytest.mark.skipif(not NO_GPU, reason="a GPU is visible")
def test_gpu_check_without_gpu_exits_with_one_line():
    with pytest.raises(SystemExit) as done:
        script("gpu_check").main([])
    assert "no CUDA GPU is visible" in str(done.value.code) and "\n" not in done.value.code


def test_make_standin_cli_writes_the_real_layout(tmp_path, capsys):
    script("make_standin").main(["--family", "llada", "--out", str(tmp_path), "--hidden", "16"])
    assert capsys.readouterr().out.strip() == str(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "modeling_llada_standin.py" in names
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llada" and config["d_model"] == 16
    assert config["auto_map"]["AutoModel"] == "modeling_llada_standin.LLaDAModelLM"


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_sampler_loop_runs_on_the_adapter(folders, family):
    from nclb.sampler import SamplerConfig, build_decoder, generate
    from nclb.tasks.template import infilling_canvas

    model = load(folders, family, suppress_eos=True)
    canvases = [
        infilling_canvas(model.prompt_ids(q), model, 12, "= ", answer_length=3)
        for q in ("1+1", "2+2")
    ]
    gens = generate(model, canvases, build_decoder("ktoken", k=1), SamplerConfig(block=4))
    for gen in gens:
        assert model.mask_id not in gen.region and not set(model.eos_ids) & set(gen.region)
        assert gen.nfe == 10 and isinstance(model.codec.decode(gen.region), str)
