"""rlkit against Hugging Face TRL on identical work, side by side (``pip install -e .[bench]``).

    python benchmarks/compare_trl.py                                  # everything, 3 repetitions
    python benchmarks/compare_trl.py --workloads sft grpo0 --sizes small --reps 5

Workloads: ``sft`` (batch 8), ``dpo`` (8 pairs, reference log-probs computed every step as
TRL does), ``grpo0`` and ``grpo04`` (GRPO with KL weight 0 and 0.04: 4 prompts x 8
completions of up to 16 sampled tokens), each at two sizes of a random-init Llama-style
model (``small`` ~3.2M, ``medium`` ~23.7M parameters), fp32, 2 threads, no packing.

Both frameworks train the same model files on the same arithmetic rows in the same order
(rlkit's built-in task as its sampler draws it; TRL gets those rows in that order, with
prompts rendered by the same chat template), so the tokens they train on are the same:
the table prints the tokens each framework's model saw with gradients (``train``, real and
padded) and without (``no-grad``: reference passes and decoding) to show it.

Every run is a fresh process. The machine's speed drifts by 15-25% over minutes, so the
runs of a workload alternate (rlkit, TRL, rlkit, TRL, ...) and each repetition's pair
gives one throughput ratio (TRL's median step time / rlkit's); the table shows the median
and min-max of these ratios. A step time is the wall time between the ends of
consecutive optimizer steps (logging included), the first ``--warmup`` steps left out.

The matmul peak is measured at the start (fp32, the benchmark's threads); ``peak%`` is the
model FLOPs of a step (6 N per trained token, 2 N per token of a no-grad pass, N the
matmul parameters) over step time and peak.

After the timed runs, one more run per framework times the kernels of the model's work,
which both call the same way (matrix products and attention, ``KernelClock``): ``kernel ms``
is their median time per step, ``kernel%`` its share of the framework's median step time
in the timed runs (the clock slows every other operator, so the clocked run's own step
time is not used). A framework can shave only what lies outside those kernels, so
``ceiling`` = ratio / rlkit's share is the most rlkit could reach on this work without
computing less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SIZES = {  # random-init Llama-style models over the built-in 512-token vocabulary
    "small": dict(hidden_size=256, intermediate_size=1024, num_layers=3, num_heads=4, num_kv_heads=4),
    "medium": dict(hidden_size=512, intermediate_size=2048, num_layers=6, num_heads=8, num_kv_heads=4),
}
WORKLOADS = ("sft", "dpo", "grpo0", "grpo04")
SEED = 0
BATCH = 8  # SFT samples / DPO pairs per step
PROMPTS, GROUP, NEW_TOKENS = 4, 8, 16  # GRPO
LR = 1e-5


@dataclass
class Workload:
    name: str
    size: str
    steps: int

    @property
    def kind(self) -> str:
        return "grpo" if self.name.startswith("grpo") else self.name

    @property
    def kl_beta(self) -> float:
        return {"grpo0": 0.0, "grpo04": 0.04}.get(self.name, 0.0)

    @property
    def batch(self) -> int:
        return PROMPTS if self.kind == "grpo" else BATCH


# ------------------------------------------------------------------ shared by both workers


def tiny_overrides(size: str) -> list[str]:
    return [f"model.tiny.{key}={value}" for key, value in SIZES[size].items()]


def rlkit_overrides(work: Workload, run_dir: Path) -> list[str]:
    """The rlkit run of ``work`` (also the source of the rows TRL gets)."""
    common = [
        "pipeline=none", f"algo={work.kind}", "logger=[jsonl]", f"trainer.max_steps={work.steps}",
        f"trainer.batch_size={work.batch}", f"trainer.lr={LR}", "trainer.schedule=constant", "trainer.warmup_steps=0",
        "trainer.eval_every=0", "trainer.save_every=0", "trainer.eval_samples=1", f"trainer.seed={SEED}",
        # The same random-init weights as TRL's: no cached SFT warm start of the built-in model.
        "model.warm_start=false", *tiny_overrides(work.size),
    ]
    if work.kind == "sft":
        return common + [f"trainer.micro_batch_size={BATCH}"]
    if work.kind == "dpo":
        return common + [f"trainer.micro_batch_size={BATCH}", "algo.precompute_ref=false", "algo.beta=0.1"]
    return common + [
        "reward=math", "reward.symbolic=false", f"algo.group_size={GROUP}", f"algo.kl_beta={work.kl_beta}",
        f"algo.sampling.max_new_tokens={NEW_TOKENS}", f"trainer.micro_batch_size={PROMPTS * GROUP}",
        "generator=hf", f"generator.batch_size={PROMPTS * GROUP}",
    ]


def composed(overrides: list[str]):
    from hydra import compose, initialize_config_module

    from rlkit.config import register_with_hydra

    register_with_hydra()
    with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


class Counter:
    """Counts the tokens every forward pass of the decoder stack sees while installed (a
    context manager that patches the backbone's class, so both frameworks are counted by
    the same code; TRL's fused LM head bypasses the causal-LM class's forward)."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id
        #: Off outside optimizer steps (rlkit's evaluation before and after training).
        self.active = True
        self.train_real = self.train_padded = self.nograd_real = 0

    def __enter__(self) -> "Counter":
        import torch
        from transformers import LlamaModel

        self._original = original = LlamaModel.forward
        counter = self

        def forward(model, input_ids=None, *args, **kwargs):
            if input_ids is not None and counter.active:
                mask = kwargs.get("attention_mask")
                if torch.is_grad_enabled():
                    real = int(mask.sum()) if mask is not None and mask.shape == input_ids.shape \
                        else int((input_ids != counter.pad).sum())
                    counter.train_real += real
                    counter.train_padded += input_ids.numel()
                else:
                    counter.nograd_real += int((input_ids != counter.pad).sum())
            return original(model, input_ids, *args, **kwargs)

        LlamaModel.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        from transformers import LlamaModel

        LlamaModel.forward = self._original

    def totals(self) -> dict:
        return {"train_real": self.train_real, "train_padded": self.train_padded, "nograd_real": self.nograd_real}


class KernelClock:
    """Wall time spent in matrix products and attention kernels (forward and backward), as a
    ``TorchDispatchMode`` that times those operators alone, while ``active``. Its dispatch
    slows every other operator, so a clocked run's step times are not the timed runs'."""

    def __init__(self):
        self.active = True
        self.seconds = 0.0

    def __enter__(self) -> "KernelClock":
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        aten = torch.ops.aten
        # mm.out and addmm_ too: TRL's chunked LM head and loss (DPO, SFT) writes into buffers.
        kernels = {aten.mm.default, aten.mm.out, aten.addmm.default, aten.addmm_.default, aten.addmm.out,
                   aten.bmm.default, aten.baddbmm.default,
                   aten._scaled_dot_product_flash_attention_for_cpu.default,
                   aten._scaled_dot_product_flash_attention_for_cpu_backward.default}
        clock = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func not in kernels or not clock.active:
                    return func(*args, **(kwargs or {}))
                start = time.perf_counter()
                out = func(*args, **(kwargs or {}))
                clock.seconds += time.perf_counter() - start
                return out

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def model_dir(size: str) -> Path:
    """The saved random-init model (and tokenizer) of ``size``, as rlkit materialises it."""
    from rlkit.config import TinyModelConfig
    from rlkit.models.tiny import materialize

    return materialize("builtin:tiny", TinyModelConfig(**SIZES[size]))


# ------------------------------------------------------------------ workers (fresh processes)


def run_rlkit(work: Workload, run_dir: Path, clock: KernelClock | None) -> dict:
    """Train ``work`` with rlkit; the end time of every optimizer step and the token counts
    (with ``clock``: also the kernel seconds so far at each step's end)."""
    from transformers import AutoTokenizer

    from rlkit.launch import train
    from rlkit.trainer.loop import Trainer

    ends: list[float] = []
    kernels: list[float] = []
    original = Trainer.train_step
    with Counter(AutoTokenizer.from_pretrained(model_dir(work.size)).pad_token_id) as counter:
        counter.active = False

        def timed_step(self):
            counter.active = True
            metrics = original(self)
            counter.active = False
            ends.append(time.perf_counter())
            kernels.append(clock.seconds if clock else 0.0)
            return metrics

        Trainer.train_step = timed_step
        try:
            train(composed(rlkit_overrides(work, run_dir)), run_dir)
        finally:
            Trainer.train_step = original
    return {"ends": ends, "kernels": kernels, **counter.totals()}


def rows_in_rlkit_order(work: Workload, tokenizer) -> list[dict]:
    """The rows rlkit's run trains on, step by step, in TRL's dataset formats."""
    from rlkit.build import resolve_components
    from rlkit.config import typed_run_config
    from rlkit.data.sampler import EpochSampler
    from rlkit.data.templates import render_prompt
    from rlkit.types import SampleKind

    config = typed_run_config(composed(rlkit_overrides(work, Path(tempfile.gettempdir()))))
    kind = {"sft": SampleKind.SFT, "dpo": SampleKind.PREFERENCE, "grpo": SampleKind.PROMPT}[work.kind]
    samples = resolve_components(config)["data"].build().load("train", kind)
    sampler = EpochSampler(len(samples), work.batch, SEED)
    ordered = [samples[i] for _ in range(work.steps) for i in sampler.next_batch()]
    rows = []
    for s in ordered:
        prompt = render_prompt(tokenizer, s.prompt)
        if work.kind == "sft":
            rows.append({"prompt": prompt, "completion": s.completion})
        elif work.kind == "dpo":
            rows.append({"prompt": prompt, "chosen": s.chosen, "rejected": s.rejected})
        else:
            rows.append({"prompt": prompt, "answer": s.answer})
    return rows


def run_trl(work: Workload, run_dir: Path, clock: KernelClock | None) -> dict:
    import torch
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    import trl

    from rlkit.rewards.math import answers_match, extract_answer

    path = model_dir(work.size)
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    dataset = Dataset.from_list(rows_in_rlkit_order(work, tokenizer))
    ends: list[float] = []
    kernels: list[float] = []

    class StepEnds(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())
            kernels.append(clock.seconds if clock else 0.0)

    common = dict(output_dir=str(run_dir), max_steps=work.steps, learning_rate=LR, lr_scheduler_type="constant",
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=SEED,
                  dataloader_num_workers=0, disable_tqdm=True, gradient_accumulation_steps=1,
                  # rlkit's defaults, which the work must share: fp32 compute (TRL would autocast to
                  # bf16) and no activation recomputation (TRL checkpoints gradients by default).
                  bf16=False, fp16=False, gradient_checkpointing=False)

    def in_order(trainer_class):
        class InOrder(trainer_class):  # the rows as rlkit's sampler drew them
            def _get_train_sampler(self, *args, **kwargs):
                return SequentialSampler(self.train_dataset)
        return InOrder

    if work.kind == "sft":
        args = trl.SFTConfig(**common, per_device_train_batch_size=BATCH, max_length=512, packing=False,
                             completion_only_loss=True)
        trainer = in_order(trl.SFTTrainer)(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    elif work.kind == "dpo":
        args = trl.DPOConfig(**common, per_device_train_batch_size=BATCH, max_length=512, beta=0.1,
                             precompute_ref_log_probs=False)
        trainer = in_order(trl.DPOTrainer)(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    else:
        def math_reward(completions, answer, **kwargs):
            return [float(answers_match(extract_answer(c) or "", a, symbolic=False)) for c, a in zip(completions, answer)]

        # TRL's own sampler repeats each prompt for its group; unshuffled, it keeps rlkit's order.
        args = trl.GRPOConfig(**common, per_device_train_batch_size=PROMPTS * GROUP, num_generations=GROUP,
                              max_completion_length=NEW_TOKENS, beta=work.kl_beta, temperature=1.0, top_p=1.0,
                              generation_batch_size=PROMPTS * GROUP, shuffle_dataset=False)
        trainer = trl.GRPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                  reward_funcs=math_reward)
    trainer.add_callback(StepEnds())
    with Counter(tokenizer.pad_token_id) as counter:
        trainer.train()
    return {"ends": ends, "kernels": kernels, **counter.totals()}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Workload(args.workload, args.size, args.steps)
    with tempfile.TemporaryDirectory() as tmp, KernelClock() if args.clock else contextlib.nullcontext() as clock:
        result = (run_rlkit if args.worker == "rlkit" else run_trl)(work, Path(tmp) / "run", clock)
    Path(args.result).write_text(json.dumps(result))


# ------------------------------------------------------------------ driver


def matmul_peak(threads: int, seconds: float = 2.0) -> float:
    """Best fp32 GFLOP/s of a 2048^3 matmul over ``seconds``."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def matmul_params(size: str) -> int:
    """Parameters that take part in matmuls (the tied embedding once, as the output layer)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir(size))
    return sum(p.numel() for name, p in model.named_parameters() if "norm" not in name)


def launch(framework: str, work: Workload, threads: int, clock: bool = False) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [sys.executable, __file__, "--worker", framework, "--workload", work.name, "--size", work.size,
                   "--steps", str(work.steps), "--threads", str(threads), "--result", result.name,
                   *(["--clock"] if clock else [])]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{framework} {work.name}/{work.size} failed:\n{done.stderr[-3000:]}")
        return json.loads(Path(result.name).read_text())


def step_times(result: dict, warmup: int, key: str = "ends") -> list[float]:
    """Per-step differences of ``result[key]`` (step end times, or kernel seconds so far)
    after the first ``warmup`` steps."""
    ends = result[key]
    return [b - a for a, b in zip(ends[warmup:], ends[warmup + 1 :])]


def fmt_ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["small", "medium"])
    parser.add_argument("--reps", type=int, default=3, help="rlkit/TRL pairs per workload")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run (GRPO: half)")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak", type=float, default=0.0, help="matmul peak in GFLOP/s (0: measure it)")
    parser.add_argument("--worker", choices=["rlkit", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=sorted(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--clock", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    peak = args.peak or matmul_peak(args.threads)
    print(f"matmul peak: {peak:.0f} GFLOP/s (fp32, {args.threads} threads{', given' if args.peak else ''}); {args.reps} repetitions, "
          f"ratio = TRL step time / rlkit step time (paired per repetition), median [min-max]", flush=True)
    header = (f"{'work':<8} {'size':<7} {'rlkit ms':>9} {'TRL ms':>9} {'ratio':>18} {'rlkit peak%':>11} "
              f"{'TRL peak%':>9} {'kernel ms rlkit/TRL':>19} {'kernel% rlkit/TRL':>17} {'ceiling':>7}  "
              f"tokens/step rlkit train real/padded, no-grad | TRL same")
    print(header, flush=True)
    params = {size: matmul_params(size) for size in args.sizes}
    for name in args.workloads:
        for size in args.sizes:
            steps = args.steps // 2 if name.startswith("grpo") else args.steps
            work = Workload(name, size, steps + args.warmup)
            medians = {"rlkit": [], "trl": []}
            tokens = {}
            for _ in range(args.reps):
                for framework in ("rlkit", "trl"):
                    result = launch(framework, work, args.threads)
                    medians[framework].append(statistics.median(step_times(result, args.warmup)))
                    n = len(result["ends"])
                    tokens[framework] = [result[k] / n for k in ("train_real", "train_padded", "nograd_real")]
            ratios = [t / r for r, t in zip(medians["rlkit"], medians["trl"])]
            kernel = {framework: statistics.median(step_times(launch(framework, work, args.threads, clock=True),
                                                              args.warmup, "kernels"))
                      for framework in ("rlkit", "trl")}
            share = {framework: kernel[framework] / statistics.median(medians[framework]) for framework in kernel}
            ceiling = statistics.median(ratios) / share["rlkit"]
            print(f"  {name} {size}: per repetition rlkit/TRL ms " + ", ".join(
                f"{1000 * r:.0f}/{1000 * t:.0f}" for r, t in zip(medians["rlkit"], medians["trl"])), flush=True)

            def percent(framework: str) -> float:
                train, _, nograd = tokens[framework]
                flops = (6 * train + 2 * nograd) * params[size]
                return 100 * flops / statistics.median(medians[framework]) / (peak * 1e9)

            counts = " | ".join(f"{a:.0f}/{b:.0f}, {c:.0f}" for a, b, c in (tokens["rlkit"], tokens["trl"]))
            print(f"{name:<8} {size:<7} {1000 * statistics.median(medians['rlkit']):9.1f} "
                  f"{1000 * statistics.median(medians['trl']):9.1f} {fmt_ratio(ratios):>18} "
                  f"{percent('rlkit'):11.1f} {percent('trl'):9.1f} "
                  f"{1000 * kernel['rlkit']:9.1f}/{1000 * kernel['trl']:<9.1f} "
                  f"{100 * share['rlkit']:8.0f}/{100 * share['trl']:<8.0f} {ceiling:7.2f}  {counts}", flush=True)


if __name__ == "__main__":
    main()
