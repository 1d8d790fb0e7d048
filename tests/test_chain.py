"""The chain task (arith with modulus 100 and trace orders): many valid traces, one checker."""

import random
import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tests.test_arith import CharLM

from nclb.config import config_dir
from nclb.tasks.arith import ArithTask
from nclb.tasks.build import build_task
from nclb.tiny.tokenizer import build_tokenizer

CHAIN = dict(
    name="chain",
    gen_length=64,
    block=9,
    answer_length=2,
    delimiter="Answer: ",
    n_test=200,
    min_steps=3,
    max_steps=6,
    train_min_steps=0,
    modulus=100,
    operand_min=10,
)


def chain(**kw) -> ArithTask:
    return ArithTask(**{**CHAIN, **kw})


def mod_value(prompt: str) -> int:
    value = int(re.match(r"\d+", prompt)[0])
    for op, b in re.findall(r"([+-])(\d+)", prompt):
        value = (value + int(b) if op == "+" else value - int(b)) % 100
    return value


def traces_of(task: ArithTask, prompt: str, draws: int = 400) -> set[str]:
    """Every scratchpad the training stream wrote for `prompt` over `draws` re-orderings."""
    ex = task.make_example(int(re.match(r"\d+", prompt)[0]), [], id="x")
    steps = [(op, int(b)) for op, b in re.findall(r"([+-])(\d+)", prompt)]
    rng = random.Random(0)
    out = set()
    for _ in range(draws):
        order = rng.sample(steps, len(steps)) if task.trace_orders == "any" else steps
        out.add(task.trace(ex.meta["start"], order))
    return out


def test_test_set_is_mod_100_with_three_to_six_operations():
    task = chain()
    for ex in task.examples():
        assert ex.gold == mod_value(ex.prompt)
        assert 3 <= len(ex.meta["steps"]) <= 6
        assert task.check_trace(ex.meta["trace"], ex.prompt)


def test_training_stream_has_many_valid_traces_with_any_order():
    task = chain(trace_orders="any")
    stream = task.train_stream(seed=7)
    seen: dict[str, set[str]] = {}
    lengths = set()
    for _ in range(3000):
        ex = next(stream)
        lengths.add(len(ex.meta["steps"]))
        assert task.check_trace(ex.meta["trace"], ex.prompt)
        seen.setdefault(ex.prompt, set()).add(ex.meta["trace"])
    assert lengths == set(range(0, 7))  # 1 to 7 terms in training
    prompt = "37+52-18+90=?"
    traces = traces_of(task, prompt)
    assert len(traces) >= 2
    assert all(task.check_trace(t, prompt) for t in traces)


def test_training_stream_writes_the_prompt_order_with_canonical():
    task = chain(trace_orders="canonical")
    stream = task.train_stream(seed=7)
    for _ in range(500):
        ex = next(stream)
        canonical = task.make_example(ex.meta["start"], [tuple(s) for s in ex.meta["steps"]], "x")
        assert ex.meta["trace"] == canonical.meta["trace"]
    assert len(traces_of(task, "37+52-18+90=?")) == 1


def test_checker_accepts_every_order_only_when_any():
    prompt = "37+52-18=?"
    in_order = chain().trace(37, [("+", 52), ("-", 18)])
    swapped = chain().trace(37, [("-", 18), ("+", 52)])
    assert in_order == "73+25=98;98-81=17;"  # 37+52=89, 89-18=71, digits reversed
    assert swapped == "73-81=91;91+25=17;"  # 37-18=19, 19+52=71
    assert chain(trace_orders="any").check_trace(swapped, prompt)
    assert chain(trace_orders="any").check_trace(in_order, prompt)
    assert chain(trace_orders="canonical").check_trace(in_order, prompt)
    assert not chain(trace_orders="canonical").check_trace(swapped, prompt)


def test_checker_wraps_mod_100_and_rejects_one_wrong_digit():
    task = chain(trace_orders="any")
    prompt = "95+17-40=?"  # 95+17=112 -> 12, 12-40=-28 -> 72
    trace = task.trace(95, [("+", 17), ("-", 40)])
    assert trace == "59+71=21;21-04=27;"
    assert task.check_trace(trace, prompt)
    for i, ch in enumerate(trace):
        if ch.isdigit():
            wrong = trace[:i] + str((int(ch) + 1) % 10) + trace[i + 1 :]
            assert not task.check_trace(wrong, prompt), wrong
    assert not task.check_trace("59+71=21;", prompt)  # a step left out
    assert not task.check_trace(trace + "27+04=67;", prompt)  # a step used twice


def test_chain_yaml_builds_and_layout_fits():
    for name in ("chain", "chain_canonical"):
        with initialize_config_dir(str(config_dir()), version_base=None):
            cfg = compose("config", [f"task={name}"])
        task = build_task(OmegaConf.to_container(cfg.task))
        assert task.name == name
        lm = CharLM()
        longest = max(task.examples(), key=lambda ex: len(ex.meta["trace"]))
        gold = task.gold_region(longest, lm, task.gen_length)
        assert len(gold) == task.gen_length
        text = lm.codec.decode(gold)
        assert text.endswith("Answer: " + str(longest.gold)) or str(longest.gold) in text


@pytest.mark.parametrize("trace_orders", ["any", "canonical"])
def test_test_set_does_not_depend_on_trace_orders(trace_orders):
    assert [ex.prompt for ex in chain(trace_orders=trace_orders).examples(50)] == [
        ex.prompt for ex in chain().examples(50)
    ]


def test_tokenizer_covers_the_layout():
    tok = build_tokenizer()
    assert tok.unk_token_id not in tok("59+71=21;Answer: 72")["input_ids"]


def test_steps_without_the_running_value_are_checked_from_the_prompt_start():
    task = chain(trace_orders="any", repeat_value=False)
    prompt = "95+17-40=?"  # 95+17=112 -> 12, 12-40=-28 -> 72
    trace = task.trace(95, [("+", 17), ("-", 40)])
    assert trace == "+71=21;-04=27;"
    assert task.check_trace(trace, prompt)
    assert task.check_trace(task.trace(95, [("-", 40), ("+", 17)]), prompt)  # 55, then 72
    for i, ch in enumerate(trace):
        if ch.isdigit():
            wrong = trace[:i] + str((int(ch) + 1) % 10) + trace[i + 1 :]
            assert not task.check_trace(wrong, prompt), wrong
    assert not task.check_trace("+71=21;-04=27;", "96+17-40=?")  # another start value
    assert not task.check_trace(chain().trace(95, [("+", 17), ("-", 40)]), prompt)  # a+b=c form
    assert not chain().check_trace(trace, prompt)  # and the other way round


def test_shipped_chain_yaml_adds_distinct_digits_and_never_wraps():
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("config", ["task=chain"])
    task = build_task(OmegaConf.to_container(cfg.task))
    for ex in task.examples():
        operands = [b for _, b in ex.meta["steps"]]
        assert len(set(operands)) == len(operands) and 3 <= len(operands) <= 6
        assert ex.gold == ex.meta["start"] + sum(operands)
        assert re.fullmatch(r"(\d\d\+\d=\d\d;)+", ex.meta["trace"])
        assert task.check_trace(ex.meta["trace"], ex.prompt)
    # The largest possible sum stays below the modulus: nothing wraps.
    largest = sorted(range(task.operand_min, task.operand_max + 1))[-task.max_steps :]
    assert task.value_max + sum(largest) < task.modulus


def test_operands_are_multiples_of_operand_multiple_in_test_and_training():
    task = chain(operand_multiple=5, operand_max=60)
    stream = task.train_stream(seed=3)
    drawn = [
        b
        for ex in [*task.examples(), *(next(stream) for _ in range(500))]
        for _, b in ex.meta["steps"]
    ]
    assert set(drawn) == set(range(10, 61, 5))  # every multiple in range, nothing else
    with pytest.raises(ValueError):
        chain(operand_multiple=50, operand_min=10, operand_max=40)  # no multiple in range


@pytest.mark.parametrize("flag", ["reverse_digits", "repeat_value"])
def test_layout_flags_must_be_booleans(flag):
    with pytest.raises(ValueError, match=flag):
        chain(**{flag: "maybe"})


DIGITS = dict(
    modulus=10,
    value_min=0,
    value_max=9,
    operand_min=1,
    operand_max=9,
    ops="+",
    distinct_operands=True,
    gen_length=40,
    answer_length=1,
    delimiter="A:",
    repeat_value=False,
)


def test_single_digit_chains_sum_distinct_digits_mod_10():
    task = chain(**DIGITS)
    stream = task.train_stream(seed=5)
    for ex in [*task.examples(), *(next(stream) for _ in range(300))]:
        operands = [b for _, b in ex.meta["steps"]]
        assert {op for op, _ in ex.meta["steps"]} <= {"+"}
        assert len(set(operands)) == len(operands) and set(operands) <= set(range(1, 10))
        assert ex.gold == (ex.meta["start"] + sum(operands)) % 10
        assert re.fullmatch(r"(\+\d=\d;)*", ex.meta["trace"])
        assert task.check_trace(ex.meta["trace"], ex.prompt)


def test_single_digit_checker_accepts_every_order_and_rejects_a_wrong_result():
    task = chain(**DIGITS, trace_orders="any")
    prompt = "4+3+7+9=?"  # 4+3=7, +7=14 -> 4, +9=13 -> 3
    assert task.check_trace("+3=7;+7=4;+9=3;", prompt)
    assert task.check_trace("+9=3;+3=6;+7=3;", prompt)
    assert not task.check_trace("+9=3;+3=6;+7=4;", prompt)  # 6+7 is 3 mod 10
    assert not task.check_trace("+9=3;+3=6;+3=9;", prompt)  # 3 twice, 7 never
    assert not chain(**DIGITS, trace_orders="canonical").check_trace("+9=3;+3=6;+7=3;", prompt)


def test_ops_and_distinct_operands_are_validated():
    with pytest.raises(ValueError, match="ops"):
        chain(**{**DIGITS, "ops": "*"})
    with pytest.raises(ValueError, match="distinct_operands"):
        chain(**{**DIGITS, "operand_max": 4})  # 4 operands for chains of up to 6 steps
    with pytest.raises(ValueError, match="modulus"):
        chain(**{**DIGITS, "value_max": 10})  # a running value that is not below the modulus
    minus = chain(**{**DIGITS, "ops": "-"})
    assert {op for ex in minus.examples(50) for op, _ in ex.meta["steps"]} == {"-"}


def test_two_way_trains_on_both_directions_and_checks_only_those():
    task = chain(**DIGITS, trace_orders="two_way")
    prompt = "4+3+7+9=?"
    forward, backward = "+3=7;+7=4;+9=3;", "+9=3;+7=0;+3=3;"
    assert task.check_trace(forward, prompt) and task.check_trace(backward, prompt)
    assert not task.check_trace("+7=1;+3=4;+9=3;", prompt)  # valid sums, a third order
    assert chain(**DIGITS, trace_orders="any").check_trace("+7=1;+3=4;+9=3;", prompt)
    stream = task.train_stream(seed=2)
    seen = {"forward": 0, "backward": 0}
    for ex in (next(stream) for _ in range(400)):
        steps = [tuple(s) for s in ex.meta["steps"]]
        if len(steps) < 2:
            continue
        written = task.trace(ex.meta["start"], steps)
        if ex.meta["trace"] == written:
            seen["forward"] += 1
        else:
            assert ex.meta["trace"] == task.trace(ex.meta["start"], steps[::-1])
            seen["backward"] += 1
    assert min(seen.values()) > 100
