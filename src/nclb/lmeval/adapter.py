"""lm-eval's `LM` interface over nclb's models and sampler, registered as lm-eval model `nclb`.

generate_until: context -> the model's prompt ids (its chat template, where it has one) -> the
canvas of the configured nclb task (`task=`: plain or reasoning-as-infilling layout, gen_length,
block) -> `nclb.runs.runner.decode` (continuous batching, as `nclb run`) with the configured decoder,
early exit and temperature. A context that is an nclb example samples from that example's random
stream (seed, example id), so sampled outputs equal `nclb run`'s too. The decoded region is cut at the
first of lm-eval's stop sequences (`until`); lm-eval's other generation settings (max_gen_toks,
temperature, do_sample) are not used: nclb's config decides them. A context that is the prompt
of one of the nclb task's own examples gets that example's canvas and nclb's score as well, so
its record matches `nclb run`'s.

loglikelihood: the MDLM Monte Carlo estimate of nclb.lmeval.mdlm (`mc_samples` draws).
loglikelihood_rolling (perplexity tasks) is not supported: one-line error.

Under torchrun every rank builds lm-eval's requests, decodes every world-th generate_until request
still to do (nclb.runs.sharding: the model on cuda:<local rank> for device auto/cuda) and rank 0
gathers the outputs in request order; loglikelihood requests are scored on rank 0 alone (their
Monte Carlo draws come from one seeded generator in request order). Every rank returns rank 0's
answers, so lm-eval's metrics are those of one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import simple_parse_args_string
from tqdm import tqdm

from nclb.config.compose import override_value
from nclb.config.settings import resolve
from nclb.errors import UserError
from nclb.lmeval.mdlm import mdlm_loglikelihood
from nclb.lmeval.requests_log import RequestLog, fingerprint, request_keys, run_folder
from nclb.lmeval.settings import compose_config, harness_options
from nclb.models.build import build_model
from nclb.runs.runner import decode, make_record
from nclb.runs.sharding import join
from nclb.sampler import Generation
from nclb.sampler.streams import stream_id
from nclb.tasks.build import build_task, model_context
from nclb.tasks.data import DataError
from nclb.types import Canvas, Example


@dataclass
class Job:
    """One generate_until request waiting to be decoded."""

    index: int
    key: str
    stream: int
    print_: str
    task_name: str
    doc_id: int
    context: str
    stops: list[str]
    example: Example | None


def stop_sequences(gen_kwargs: Any) -> list[str]:
    """lm-eval's `until` (a string or a list) as a list of non-empty strings."""
    until = (gen_kwargs or {}).get("until") if isinstance(gen_kwargs, dict) else None
    if until is None:
        return []
    return [s for s in ([until] if isinstance(until, str) else list(until)) if s]


def cut_at_stops(text: str, stops: list[str]) -> str:
    """`text` up to the first occurrence of any stop sequence."""
    ends = [text.find(s) for s in stops if s in text]
    return text[: min(ends)] if ends else text


def usable(device: str) -> bool:
    """Whether lm-eval's `--device` can be used here: its command line passes cuda:0 by default,
    which on a machine without a GPU leaves nclb's own device choice (auto) in force."""
    return not device.startswith("cuda") or torch.cuda.is_available()


@register_model("nclb")
class NclbLM(LM):
    """nclb's sampler (any decoder, early exit, block, gen_length) as an lm-eval model.

    Build it from a composed `nclb lm-eval` config (`config=`), or, as lm-eval's command line
    does, from `--model_args` keyword arguments, which are nclb overrides
    (`model=tiny,task=arith,decoder=med,lam=0.2`; `task=` picks the canvas layout). lm-eval's
    `batch_size` and `device` apply unless the overrides set them; `max_batch_size` is not used.
    Records go to the run folder under `out_dir` (`folder`); `harness` (the lm-eval settings)
    is part of the folder's identity.
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        harness: dict[str, Any] | None = None,
        batch_size: int | str | None = None,
        max_batch_size: int | None = None,
        device: str | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if config is None:
            items = [f"{key}={override_value(value)}" for key, value in overrides.items()]
            if batch_size not in (None, "auto") and "batch_size" not in overrides:
                items.append(f"batch_size={batch_size}")
            if device and "device" not in overrides and usable(str(device)):
                items.append(f"device={device}")
            config = compose_config(items)
        s = self.settings = resolve(config)
        self.shard = join()  # rank 0 of 1 unless torchrun started several processes
        s.model = {**s.model, "device": self.shard.device(str(s.model.get("device", "auto")))}
        self.mc_samples = harness_options(config).mc_samples
        self.task = build_task(s.task)
        self.examples = self.known_examples(s.model.get("name") == "reference")
        self.model = build_model(
            s.model, model_context(self.task, list(self.examples.values()), s.gen_length)
        )
        self._device = self.model.device
        self.folder, identity = run_folder(s, harness or {"via": "lm_eval command line"})
        self.log = RequestLog(self.folder, identity, s.resume, self.shard)
        self.generator = torch.Generator().manual_seed(s.seed)  # the MDLM likelihood draws

    @classmethod
    def create_from_arg_string(
        cls, arg_string: str, additional_config: dict[str, Any] | None = None
    ) -> NclbLM:
        """lm-eval's entry from `--model_args`: a key set there (`device=cpu`, `batch_size=8`)
        wins over lm-eval's flag of the same name instead of clashing with it."""
        args = simple_parse_args_string(arg_string)
        flags = {k: v for k, v in (additional_config or {}).items() if v is not None}
        return cls(**{**flags, **args})

    def model_args(self) -> dict[str, Any]:
        """nclb's settings of this model as lm-eval's results JSON records them (model_args):
        the model, decoder and sampler keys, dotted (model.name, decoder.lam, sampler.block)."""
        s = self.settings
        model = {k: v for k, v in s.model.items() if k != "tasks"}
        settings = {"model": model, "decoder": s.decoder_cfg, "sampler": s.sampler.identity()}
        return {**dotted_items(settings), "seed": s.seed}

    def known_examples(self, required: bool) -> dict[str, Example]:
        """The nclb task's examples by prompt text ({} when its data is missing and not
        `required`: the task then only lays out the contexts)."""
        try:
            examples = self.task.examples()
        except DataError:
            if required:
                raise
            return {}
        found: dict[str, Example] = {}
        for ex in examples:
            found.setdefault(ex.prompt, ex)
        return found

    def canvas(self, example: Example) -> Canvas:
        """The nclb task's canvas for `example` (its prompt through the model's chat template)."""
        try:
            return self.task.canvas(example, self.model, self.settings.gen_length)
        except (KeyError, AttributeError) as err:
            raise UserError(
                f"task={self.task.name} lays out its own examples only ({err!r}); decode lm-eval "
                "tasks with task=gsm8k or task=math (task.template=plain for a plain prompt)"
            ) from None

    # ---- generation ---------------------------------------------------------------------

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Decode each request's context with nclb's sampler; the region text cut at `until`."""
        s = self.settings
        out: list[str] = [""] * len(requests)
        todo: list[tuple[Job, Canvas]] = []
        for index, (req, (key, repeat)) in enumerate(zip(requests, request_keys(requests))):
            context, gen_kwargs = req.args
            stops = stop_sequences(gen_kwargs)
            print_ = fingerprint("generate_until", context, stops)
            logged = self.log.lookup(key, print_)
            if logged is not None:
                out[index] = logged["response"]
                continue
            example = self.examples.get(context)
            # nclb run's stream for an nclb example; repeats and other contexts get their own
            name = example.id if example is not None and repeat == 0 else key
            stream = stream_id(s.seed, name)
            job = Job(
                index, key, stream, print_, req.task_name, req.doc_id, context, stops, example
            )
            todo.append((job, self.canvas(example or Example(key, context, None))))
        if not todo:
            return out
        share = self.shard.split(todo)
        new: list[dict[str, Any]] = []
        quiet = disable_tqdm or not self.shard.leader
        with tqdm(total=len(share), desc="nclb generate_until", disable=quiet) as bar:

            def finished(i: int, gen: Generation) -> None:
                job, canvas = share[i]
                record = self.generation_record(job, canvas, gen)
                self.log.write_share(record)
                new.append(record)
                bar.update(1)

            decode(
                self.model,
                [canvas for _, canvas in share],
                s.decoder,
                s.sampler,
                s.batch_size,
                streams=[job.stream for job, _ in share],
                on_done=finished,
            )
        merged = self.log.merge([job.key for job, _ in todo], new)
        index = {job.key: job.index for job, _ in todo}
        for record in merged or []:
            out[index[record["id"]]] = record["response"]
        return self.shard.from_leader(out)  # rank 0 logged or gathered every request

    def generation_record(self, job: Job, canvas: Canvas, gen: Generation) -> dict[str, Any]:
        """The log line of one decoded request: nclb's record (with nclb's score when the
        context is one of the task's examples), lm-eval's request and the response it got."""
        if job.example is not None:
            record = make_record(
                job.example,
                canvas,
                gen,
                self.task,
                self.model,
                gen.seconds,
                self.settings.log_trajectory,
            )
            record["example_id"] = record["id"]
        else:
            codec = self.model.codec
            span = canvas.answer
            record = {
                "prompt": job.context,
                "output": codec.decode(gen.region),
                "answer_text": codec.decode(gen.region[span[0] : span[1]]) if span else None,
                "nfe": gen.nfe,
                "gen_tokens": sum(len(step.positions) for step in gen.steps),
                "seconds": gen.seconds,
                "exit_step": gen.exit_step,
            }
        record.update(
            {
                "id": job.key,
                "request": "generate_until",
                "lm_eval_task": job.task_name,
                "doc_id": job.doc_id,
                "stop": job.stops,
                "response": cut_at_stops(record["output"], job.stops),
                "fingerprint": job.print_,
            }
        )
        return record

    # ---- scoring ------------------------------------------------------------------------

    def loglikelihood(
        self, requests: list[Any], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        """(log p(continuation | context), is_greedy) by the MDLM Monte Carlo estimate."""
        out: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
        todo = []
        for index, (req, (key, _)) in enumerate(zip(requests, request_keys(requests))):
            context, continuation = req.args
            print_ = fingerprint("loglikelihood", context, continuation, self.mc_samples)
            logged = self.log.lookup(key, print_)
            if logged is not None:
                out[index] = (logged["logprob"], logged["is_greedy"])
            else:
                todo.append((index, key, print_, req, context, continuation))
        size = self.settings.batch_size
        if not self.shard.leader:
            todo = []  # rank 0 scores them all and hands out its answers
        for start in tqdm(
            range(0, len(todo), size), desc="nclb loglikelihood", disable=disable_tqdm
        ):
            chunk = todo[start : start + size]
            prompts = [self.model.prompt_ids(item[4]) for item in chunk]
            targets = [self.model.codec.encode(item[5]) for item in chunk]
            scores = mdlm_loglikelihood(
                self.model, prompts, targets, self.mc_samples, self.generator, size
            )
            for (index, key, print_, req, context, continuation), target, (logprob, greedy) in zip(
                chunk, targets, scores
            ):
                self.log.write(
                    {
                        "id": key,
                        "request": "loglikelihood",
                        "lm_eval_task": req.task_name,
                        "doc_id": req.doc_id,
                        "prompt": context,
                        "continuation": continuation,
                        "logprob": logprob,
                        "is_greedy": greedy,
                        "mc_samples": self.mc_samples,
                        "nfe": self.mc_samples + 1 if target else 0,
                        "fingerprint": print_,
                    }
                )
                out[index] = (logprob, greedy)
        return self.shard.from_leader(out)  # rank 0 logged or scored every request

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Not supported: a one-line UserError."""
        raise UserError(
            "loglikelihood_rolling (perplexity tasks) is not supported by the nclb model: a masked "
            "diffusion LM has no left-to-right likelihood to roll over a document; use "
            "generate_until or loglikelihood (multiple-choice) tasks"
        )

    def close(self) -> None:
        """Release the run folder."""
        self.log.close()


def dotted_items(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict's leaves under dotted keys ({"a": {"b": 1}} -> {"a.b": 1})."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(dotted_items(value, f"{name}."))
        else:
            out[name] = value
    return out
