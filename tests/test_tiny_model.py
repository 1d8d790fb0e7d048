"""The tiny MDLM: checkpoint round-trip through the Auto classes, padding invariance, tokenizer."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from nclb.tiny import modeling_nclb_tiny as modeling
from nclb.tiny.checkpoint import load_checkpoint, save_checkpoint
from nclb.tiny.modeling_nclb_tiny import NclbTinyConfig, NclbTinyForMaskedLM
from nclb.tiny.tokenizer import build_tokenizer

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED_NAMES = [
    "tiny-arith",
    "tiny-sudoku9",
    "tiny-arith-t2",
    "tiny-chain",
    "tiny-chain_canonical",
    "tiny-chain_two_way",
]


def small_model(**kw) -> NclbTinyForMaskedLM:
    torch.manual_seed(0)
    cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return NclbTinyForMaskedLM(NclbTinyConfig(**(cfg | kw))).eval()


def test_checkpoint_round_trip_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = small_model(), build_tokenizer()
    folder = save_checkpoint(model, tok, tmp_path / "ck")
    assert (folder / "modeling_nclb_tiny.py").is_file()
    loaded = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
    tok2 = AutoTokenizer.from_pretrained(folder)
    ids = torch.tensor([tok2.encode("12+34=?", add_special_tokens=False) + [tok2.mask_token_id]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits)
    own, _ = load_checkpoint(folder)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, own(ids).logits)


@pytest.mark.parametrize("absolute", [False, True])
def test_left_padding_does_not_change_real_tokens(absolute):
    model = small_model(absolute_positions=absolute)
    ids = torch.randint(4, 100, (3, 9))
    pad = torch.zeros(3, 5, dtype=torch.long)
    padded = torch.cat([pad, ids], 1)
    attn = torch.cat([pad.bool(), torch.ones_like(ids, dtype=torch.bool)], 1)
    with torch.no_grad():
        plain = model(ids).logits
        left = model(padded, attention_mask=attn).logits[:, 5:]
    assert torch.allclose(plain, left, atol=1e-5)
    ragged = attn.clone()
    ragged[0, 5:7] = False  # a shorter first row must not affect the others
    with torch.no_grad():
        out = model(padded, attention_mask=ragged).logits
    assert torch.allclose(out[1:, 5:], plain[1:], atol=1e-5)


def test_tokenizer_round_trip_with_mask():
    tok = build_tokenizer()
    text = "Sudoku: 12+3=?\nThe answer is: 15"
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    masked = ids[:3] + [tok.mask_token_id] + ids[3:] + [tok.eos_token_id, tok.pad_token_id]
    assert tok.convert_ids_to_tokens(tok.mask_token_id) == "[MASK]"
    assert tok.decode(masked, skip_special_tokens=True) == text
    assert (tok.pad_token_id, tok.mask_token_id, tok.eos_token_id) == (0, 1, 2)


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_checkpoint_loads(name, monkeypatch):
    folder = SHIPPED / name
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.config.mask_token_id == tok.mask_token_id
    assert not any(p.suffix == ".pt" for p in folder.iterdir())  # no optimizer state shipped
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size <= 25 * 10**6  # every shipped checkpoint together under 25 MB


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_modeling_file_is_the_package_source(name):
    """Each checkpoint carries its own copy of the remote code; it must not drift from the source."""
    source = Path(modeling.__file__).read_bytes()
    assert (SHIPPED / name / "modeling_nclb_tiny.py").read_bytes() == source


def test_weights_loaded_into_an_empty_model_give_the_same_logits():
    """transformers 5.x builds the model on the meta device and fills in only the saved tensors;
    any state not in model.safetensors (such as a non-persistent buffer) would be garbage."""
    from safetensors.torch import load_file

    folder = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny-sudoku9"
    loaded, _ = load_checkpoint(folder)
    with torch.device("meta"):
        empty = NclbTinyForMaskedLM(loaded.config)
    empty = empty.to_empty(device="cpu").eval()
    empty.load_state_dict(load_file(folder / "model.safetensors"), strict=True)
    ids = torch.randint(4, 90, (2, 30))
    with torch.no_grad():
        assert torch.equal(empty(ids).logits, loaded(ids).logits)
