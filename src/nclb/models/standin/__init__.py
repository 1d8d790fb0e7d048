"""Random-weight stand-ins for the LLaDA-8B and Dream-7B checkpoints (offline tests, GPU checks).

A stand-in folder has the real layout: config.json whose `auto_map` points at a modeling file
copied into the folder (same class names and config fields as the released remote code),
model.safetensors, and a character-level fast tokenizer whose special tokens include the real
ones as strings, with a Llama-3 (LLaDA) or Qwen (Dream) chat template in tokenizer_config.json.
Ids are small (vocabulary of a few hundred), so the adapter must read them from the checkpoint.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

from nclb.models.hf import FAMILIES, HFMaskedLM
from nclb.models.standin import modeling_dream_standin, modeling_llada_standin

CHARS = "\n" + "".join(chr(c) for c in range(32, 127))
UNK = "<unk>"

LLAMA3_TEMPLATE = (
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] "
    "| trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class StandinSpec:
    """How one family's stand-in is laid out.

    roles: tokenizer attributes (bos_token, eos_token, ...) set to special-token strings.
    bos_prefix: the tokenizer prepends bos_token when asked for special tokens (Llama-3 style).
    fields: size name (hidden, layers, ...) -> the config fields that hold it.
    id_fields: config fields set to the id of the mask token ("mask") or the eos token ("eos").
    """

    module: ModuleType
    config_class: str
    model_class: str
    auto_map: dict[str, str]
    specials: tuple[str, ...]
    roles: dict[str, str]
    chat_template: str
    bos_prefix: bool
    mask_token: str
    fields: dict[str, tuple[str, ...]]
    id_fields: dict[str, str]


SPECS = {
    "llada": StandinSpec(
        module=modeling_llada_standin,
        config_class="LLaDAConfig",
        model_class="LLaDAModelLM",
        auto_map={
            "AutoConfig": "modeling_llada_standin.LLaDAConfig",
            "AutoModel": "modeling_llada_standin.LLaDAModelLM",
            "AutoModelForCausalLM": "modeling_llada_standin.LLaDAModelLM",
        },
        specials=(
            "<|startoftext|>",
            "<|endoftext|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|mdm_mask|>",
        ),
        roles={"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"},
        chat_template=LLAMA3_TEMPLATE,
        bos_prefix=True,
        mask_token="<|mdm_mask|>",
        fields={
            "hidden": ("d_model",),
            "layers": ("n_layers",),
            "heads": ("n_heads",),
            "kv_heads": ("n_kv_heads",),
            "mlp": ("mlp_hidden_size",),
            "vocab": ("vocab_size", "embedding_size"),
        },
        id_fields={"mask_token_id": "mask", "eos_token_id": "eos", "pad_token_id": "eos"},
    ),
    "dream": StandinSpec(
        module=modeling_dream_standin,
        config_class="DreamConfig",
        model_class="DreamModel",
        auto_map={
            "AutoConfig": "modeling_dream_standin.DreamConfig",
            "AutoModel": "modeling_dream_standin.DreamModel",
        },
        specials=("<|beginoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"),
        roles={
            "bos_token": "<|beginoftext|>",
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "mask_token": "<|mask|>",
        },
        chat_template=QWEN_TEMPLATE,
        bos_prefix=False,
        mask_token="<|mask|>",
        fields={
            "hidden": ("hidden_size",),
            "layers": ("num_hidden_layers",),
            "heads": ("num_attention_heads",),
            "kv_heads": ("num_key_value_heads",),
            "mlp": ("intermediate_size",),
            "vocab": ("vocab_size",),
        },
        id_fields={
            "mask_token_id": "mask",
            "eos_token_id": "eos",
            "pad_token_id": "eos",
            "bos_token_id": "eos",
        },
    ),
}

# The released models' shapes (gpu_check builds these in memory).
REAL_SIZES = {
    "llada": {
        "hidden": 4096,
        "layers": 32,
        "heads": 32,
        "kv_heads": 32,
        "mlp": 12288,
        "vocab": 126464,
    },
    "dream": {
        "hidden": 3584,
        "layers": 28,
        "heads": 28,
        "kv_heads": 4,
        "mlp": 18944,
        "vocab": 152064,
    },
}
# The defaults of standin_config / build_standin (tiny: builds in well under a second).
SMALL_SIZES = {"hidden": 32, "layers": 2, "heads": 4, "mlp": 64, "vocab": 256}


def get_spec(family: str) -> StandinSpec:
    """The stand-in layout of `family` (llada | dream)."""
    if family not in SPECS:
        raise ValueError(f"family={family!r} has no stand-in; choose one of {sorted(SPECS)}")
    return SPECS[family]


def standin_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """One token per printable ASCII character, then <unk> and the family's special tokens."""
    spec = get_spec(family)
    vocab = {ch: i for i, ch in enumerate(CHARS)}
    for tok in (UNK, *spec.specials):
        vocab[tok] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    bos = spec.roles["bos_token"]
    if spec.bos_prefix:
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    role_tokens = set(spec.roles.values())
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=UNK,
        additional_special_tokens=[t for t in spec.specials if t not in role_tokens],
        chat_template=spec.chat_template,
        clean_up_tokenization_spaces=False,
        **spec.roles,
    )


def standin_config(
    family: str,
    tokenizer: PreTrainedTokenizerFast,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    mlp: int = 64,
    vocab: int = 256,
) -> PretrainedConfig:
    """The family's config with the real field names, sized as asked, ids from `tokenizer`."""
    spec = get_spec(family)
    if vocab < len(tokenizer):
        raise ValueError(f"vocab={vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    ids = {"mask": spec.mask_token, "eos": spec.roles["eos_token"]}
    ids = {key: tokenizer.convert_tokens_to_ids(tok) for key, tok in ids.items()}
    sizes = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads or heads,
        "mlp": mlp,
        "vocab": vocab,
    }
    fields = {name: value for key, value in sizes.items() for name in spec.fields[key]}
    fields |= {name: ids[key] for name, key in spec.id_fields.items()}
    config = getattr(spec.module, spec.config_class)(**fields)
    config.auto_map = dict(spec.auto_map)
    config.architectures = [spec.model_class]
    return config


def standin_model(config: PretrainedConfig) -> PreTrainedModel:
    """A random-weight model of the config's family (built on the current default device)."""
    spec = get_spec(config.model_type.lower())
    return getattr(spec.module, spec.model_class)(config).eval()


def in_memory_standin(
    family: str, device: torch.device, dtype: torch.dtype, **sizes: int
) -> HFMaskedLM:
    """The adapter over a random-weight model of `family` sized as `sizes` (as in
    standin_config), built directly on `device` in `dtype` (nothing written; for a model of
    the real shape, REAL_SIZES, on a GPU). Seed torch first for reproducible weights."""
    tokenizer = standin_tokenizer(family)
    config = standin_config(family, tokenizer, **sizes)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = standin_model(config)
    finally:
        torch.set_default_dtype(default)
    return HFMaskedLM(model, tokenizer, FAMILIES[family])


def build_standin(family: str, out_dir: str | Path, seed: int = 0, **sizes: int) -> Path:
    """Write a random-weight stand-in checkpoint folder for `family`; sizes as in standin_config."""
    spec = get_spec(family)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = standin_tokenizer(family)
    config = standin_config(family, tokenizer, **sizes)
    torch.manual_seed(seed)
    standin_model(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    shutil.copyfile(spec.module.__file__, out / Path(spec.module.__file__).name)
    return out
