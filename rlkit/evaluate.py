"""Score a model on held-out prompts: greedy accuracy, reward, and unbiased pass@k (with
``env=``: in multi-turn episodes, with success rate, turns and tool use); or
hand it to an external harness (``harness=lm_eval``, rlkit.benchmarks.lm_eval).

    python -m rlkit.evaluate model.name_or_path=outputs/.../final reward=math eval.k=8
    python -m rlkit.evaluate eval=math500 model.name_or_path=outputs/.../final
    python -m rlkit.evaluate env=calculator data.operations=[*] data.digits=3 model.name_or_path=... eval.k=8
    python -m rlkit.evaluate harness=lm_eval harness.tasks=[hellaswag] model.name_or_path=outputs/.../final

Takes the same config groups as training (model, data, reward, generator); writes
``eval.json`` into the run directory and prints the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rlkit.config import register_with_hydra, typed_run_config
from rlkit.outputs import RunOutputs

register_with_hydra()


def evaluate_run(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    from rlkit.build import build_environment, build_judge, build_reward, generator_spec, resolve_components
    from rlkit.data.checks import check_dataset_prompts
    from rlkit.models.loading import load_causal_lm, load_tokenizer
    from rlkit.trainer.evaluation import evaluate_prompts
    from rlkit.trainer.loop import set_seed
    from rlkit.types import SampleKind, SamplingParams

    run = typed_run_config(cfg)
    if run.harness:
        from rlkit.benchmarks.lm_eval import harness_config, run_lm_eval
        from rlkit.models.loading import resolve_path

        return run_lm_eval(harness_config(run.harness), run.model, resolve_path(run.model), run_dir)
    parts = resolve_components(run)
    set_seed(run.trainer.seed)
    dataset = parts["data"].build()
    samples = dataset.load(run.eval.split, SampleKind.PROMPT)
    if run.eval.samples:
        samples = samples[: run.eval.samples]
    backend = parts["backend"].build()
    tokenizer = load_tokenizer(run.model)
    check_dataset_prompts(dataset, {run.eval.split: samples}, tokenizer, run.model.name_or_path)
    model = backend.wrap(load_causal_lm(run.model), trainable=False).eval()
    generator = generator_spec(parts).build(model, tokenizer)
    reward = build_reward(parts["reward"]) if "reward" in parts else None
    sampling = SamplingParams(temperature=run.eval.temperature, top_p=run.eval.top_p)
    if "env" in parts:
        from rlkit.environments.evaluation import evaluate_episodes
        from rlkit.environments.rollout import EpisodeRunner

        environment = build_environment(parts["env"])
        try:
            metrics = evaluate_episodes(EpisodeRunner(environment, generator, tokenizer), samples, reward,
                                        build_judge(reward), run.eval.max_new_tokens, k=run.eval.k, sampling=sampling)
        finally:
            environment.close()
    else:
        metrics = evaluate_prompts(generator, samples, reward, build_judge(reward), run.eval.max_new_tokens,
                                   k=run.eval.k, sampling=sampling)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"model": run.model.name_or_path, "split": run.eval.split, "prompts": len(samples), **metrics}
    RunOutputs(run_dir).evaluation.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return metrics


@hydra.main(config_path="pkg://rlkit.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, float]:
    from hydra.core.hydra_config import HydraConfig

    return evaluate_run(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
