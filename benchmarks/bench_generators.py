"""Generation tokens/s of generator=hf against generator=vllm, and their log-prob mismatch.

    .venv-vllm/bin/python benchmarks/bench_generators.py                  # CPU, 23.7M Llama
    python benchmarks/bench_generators.py --device cuda --hidden 896 --layers 24 --dtype bfloat16

Both generators sample the same prompts (arithmetic questions, ``--rows`` completions of
``--max-new-tokens`` tokens) from the same random-init built-in Llama, alternately (hf, vllm,
hf, vllm, ...) since this machine's speed drifts; the figures are medians over ``--repeats``
rounds after one warm-up round each. The mismatch is the mean absolute difference between
each generator's log-probs of its sampled tokens and the trainer's (one full forward pass of
the same model, log_softmax(logits / temperature)).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def model_and_tokenizer(args: argparse.Namespace):
    """``--model`` or the built-in Llama sized by the shape options."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlkit.config import TinyModelConfig
    from rlkit.models.tiny import materialize

    shape = TinyModelConfig(hidden_size=args.hidden, intermediate_size=2 * args.hidden, num_layers=args.layers,
                            num_heads=args.heads, num_kv_heads=args.kv_heads, max_position_embeddings=512)
    path = args.model or materialize("builtin:tiny", shape)
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(args.device).eval()
    return model, AutoTokenizer.from_pretrained(path)


def trainer_mismatch(model, tokenizer, prompts, completions, temperature: float) -> float:
    """Mean |generator log-prob - trainer log-prob| over all sampled tokens."""
    from rlkit.data.templates import encode_prompt

    total, count = 0.0, 0
    with torch.no_grad():
        for c in completions:
            prompt = encode_prompt(tokenizer, prompts[c.prompt_index])
            ids = torch.tensor([prompt + c.token_ids], device=model.device)
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
            logprobs = (logits / temperature).log_softmax(-1)
            ours = logprobs.gather(-1, torch.tensor(c.token_ids, device=model.device)[:, None]).squeeze(-1)
            total += (ours.cpu() - torch.tensor(c.logprobs)).abs().sum().item()
            count += len(c.token_ids)
    return total / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model directory instead of the built-in Llama")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=128, help="completions per round")
    parser.add_argument("--n", type=int, default=4, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    args = parser.parse_args()

    from rlkit.data.arithmetic import ArithmeticTask
    from rlkit.generators.hf import HFGenerator
    from rlkit.generators.vllm import VLLMGenerator
    from rlkit.types import SampleKind, SamplingParams

    model, tokenizer = model_and_tokenizer(args)
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    task = ArithmeticTask(ArithmeticTask.Config(digits=2, train_size=args.rows // args.n, eval_size=8))
    prompts = [s.prompt for s in task.load("train", SampleKind.PROMPT)[: args.rows // args.n]]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, n=args.n)

    start = time.perf_counter()
    generators = {
        "hf": HFGenerator(HFGenerator.Config(batch_size=args.rows), model, tokenizer),
        "vllm": VLLMGenerator(VLLMGenerator.Config(cpu_kvcache_space_gib=1.0,
                                                   gpu_memory_utilization=args.gpu_memory_utilization), model, tokenizer),
    }
    print(f"vllm engine started in {time.perf_counter() - start:.1f} s", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in generators}
    mismatch: dict[str, float] = {}
    for round_ in range(args.repeats + 1):
        for name, generator in generators.items():
            torch.manual_seed(round_)
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            completions = generator.generate(prompts, params)
            if args.device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            if round_ == 0:  # warm-up; the mismatch is measured once
                mismatch[name] = trainer_mismatch(model, tokenizer, prompts, completions, params.temperature)
                continue
            rates[name].append(sum(len(c.token_ids) for c in completions) / seconds)

    print(f"model: {params_m:.1f}M parameters ({args.model or f'hidden {args.hidden}, {args.layers} layers'}), "
          f"{args.dtype} on {args.device}; "
          f"{len(prompts)} prompts x {args.n} completions x <= {args.max_new_tokens} tokens")
    for name in generators:
        print(f"{name:<5} {statistics.median(rates[name]):8.0f} tokens/s   "
              f"log-prob mismatch vs trainer {mismatch[name]:.2e}   (rounds: {', '.join(f'{r:.0f}' for r in rates[name])})")
    print(f"vllm / hf: {statistics.median(rates['vllm']) / statistics.median(rates['hf']):.2f}x")


if __name__ == "__main__":
    main()
