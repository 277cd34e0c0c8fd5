"""Step time and per-rank memory of parameters, gradients and optimizer state per backend.

    python benchmarks/bench_backends.py                      # CPU: single, ddp, fsdp2, fsdp2+tp on 2 ranks
    python benchmarks/bench_backends.py --device cuda --nproc 1 --backends single fsdp2 fsdp2:cpu_offload=true
    python benchmarks/bench_backends.py --hidden 512 --layers 8 --steps 20

Each variant trains a Llama-style model built from a config (random weights, nothing
downloaded) on random tokens with AdamW for ``--steps`` steps after ``--warmup`` steps, the
same global batch split over the ranks. Memory is the bytes of each rank's local tensors
(its shards under fsdp2), measured after backward and after the optimizer step; on GPUs the
peak allocated memory is shown too. A variant is ``name`` or
``name:key=value,key=value`` with backend config overrides, e.g. ``fsdp2:tp_size=2``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

MiB = 2**20


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    import yaml

    name, _, rest = text.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    return name, overrides


def build_backend(name: str, overrides: dict[str, Any]):
    from rlkit.config import component_config

    cls, config = component_config("backend", {"name": name, **overrides}, "backends")
    return cls(config)


def measure(name: str, overrides: dict[str, Any], model_args: dict[str, int], batch: int, seq: int,
            steps: int, warmup: int, seed: int = 0) -> list[dict[str, float]]:
    """Train ``steps`` steps on this rank; every rank's figures (in rank order) on rank 0."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlkit.backends.memory import state_bytes

    torch.manual_seed(seed)
    backend = build_backend(name, overrides)
    config = LlamaConfig(
        vocab_size=model_args["vocab"], hidden_size=model_args["hidden"], intermediate_size=4 * model_args["hidden"],
        num_hidden_layers=model_args["layers"], num_attention_heads=model_args["heads"],
        num_key_value_heads=max(1, model_args["heads"] // 2), tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    parameters = sum(p.numel() for p in model.parameters())
    model = backend.wrap(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = torch.randint(0, model_args["vocab"], (batch, seq), generator=torch.Generator().manual_seed(seed))
    share = batch // backend.dp_size
    local = tokens[backend.dp_rank * share : (backend.dp_rank + 1) * share].to(backend.device)
    cuda = backend.device.type == "cuda"
    times, after_backward = [], {}
    for step in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(input_ids=local, labels=local).loss * share / batch  # a global mean
        backend.backward(loss)
        if step == 0:
            after_backward = state_bytes(model)
        backend.clip_grad_norm(model, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    memory = state_bytes(model, optimizer)
    figures = {
        "step_ms": 1000 * statistics.median(times),
        "params_mib": memory["params"] / MiB,
        "grads_mib": after_backward["grads"] / MiB,
        "optimizer_mib": memory["optimizer"] / MiB,
        "parameters": parameters,
    }
    if cuda:
        figures["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MiB
    everyone = [figures]
    if backend.world_size > 1:
        import torch.distributed as dist

        everyone = [None] * backend.world_size
        dist.all_gather_object(everyone, figures)
    backend.close()
    return everyone


def run_variant(text: str, nproc: int, device: str, **kwargs) -> list[dict[str, float]]:
    from rlkit.backends.launch import run_ranks

    name, overrides = parse_variant(text)
    overrides.setdefault("device", device)
    if name == "single":
        return measure(name, overrides, **kwargs)
    return run_ranks(measure, (name, overrides, *kwargs.values()), nproc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["single", "ddp", "fsdp2", "fsdp2:tp_size=2"])
    parser.add_argument("--nproc", type=int, default=2, help="ranks of the multi-process variants")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=8, help="global batch (sequences)")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))

    model_args = {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "vocab": args.vocab}
    kwargs = {"model_args": model_args, "batch": args.batch, "seq": args.seq, "steps": args.steps, "warmup": args.warmup}
    header = f"{'backend':<28}{'ranks':>6}{'step ms':>10}{'params MiB':>12}{'grads MiB':>11}{'optim MiB':>11}{'total MiB':>11}"
    rows = []
    for variant in args.backends:
        ranks = run_variant(variant, args.nproc, args.device, **kwargs)
        rows.append((variant, ranks))
        if variant == args.backends[0]:
            print(f"model: {ranks[0]['parameters'] / 1e6:.2f}M parameters, batch {args.batch}x{args.seq} tokens, "
                  f"device {args.device}, median of {args.steps} steps", flush=True)
            print(header + ("   peak alloc MiB" if args.device.startswith("cuda") else ""), flush=True)
        for rank, r in enumerate(ranks):
            total = r["params_mib"] + r["grads_mib"] + r["optimizer_mib"]
            peak = f"{r['peak_allocated_mib']:>17.1f}" if "peak_allocated_mib" in r else ""
            print(f"{variant if rank == 0 else '':<28}{rank:>6}{r['step_ms']:>10.1f}{r['params_mib']:>12.2f}"
                  f"{r['grads_mib']:>11.2f}{r['optimizer_mib']:>11.2f}{total:>11.2f}{peak}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
