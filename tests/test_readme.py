"""Every `python -m rlkit...` command in README.md runs as written, so the README cannot rot.

Commands are taken from the README's code blocks (continuation lines joined, comments dropped)
and inline code spans. Each one is, in this order of precedence:

* on SKIP, with the reason it cannot run here (a remote cluster, a file only the reader has);
* on RUN_AS_TYPED_BY, with the test that runs it exactly as typed, to the end, and asserts
  what it shows (a shortened run here would only repeat a part of that);
* on COMPOSE_ONLY, with the reason: its config is composed and validated as written (`--cfg
  job`; a sweep's every job, as its launcher would compose them), since it needs GPUs, more
  ranks than CI has, Ray, vLLM or a long sweep (their own tests run those paths);
* otherwise RUN: run in this process, as `python -m` would, with small step counts appended
  (FAST; later overrides win) and local stand-ins for what it would download (STAND_INS: the
  hub model becomes a random-init tiny Qwen2, hub datasets local copies in their exact schema).

A README command on none of the lists runs; a list entry no longer in the README fails, so the
lists stay exact.
"""

from __future__ import annotations

import os
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from tests.data import hub_fixtures
from tests.models.families import build_family

README = Path(__file__).resolve().parent.parent / "README.md"

SKIP = {
    "python -m rlkit -m": "a mention in prose, not a command",
    "python -m rlkit.sweeps.summary DIR": "DIR is a finished sweep directory; tests/sweeps run the summary on real ones",
    "python -m rlkit.sweeps.summary multirun/2025-06-01/12-00-00 --metric eval/loss --plot":
        "an example sweep directory of the reader's; tests/sweeps run the summary on real ones",
    "python -m rlkit reward=brevity reward.max_chars=8":
        "needs the example plugin installed; tests/test_plugin.py installs it and runs this reward",
    "python -m rlkit \"$@\" cluster.address=<head>": "a line of scripts/slurm_ray.sbatch, described in prose",
    "python -m rlkit --config-dir ~/rlkit-conf hydra/launcher=mycluster backend=ddp backend.nproc_per_node=8 "
    "backend.device=cuda --cfg all --resolve": "the reader's own launcher config (~/rlkit-conf); tests/sweeps check the requests",
    "python -m rlkit -m --config-dir ~/rlkit-conf hydra/launcher=mycluster +sweep=dpo_beta backend=ddp "
    "backend.nproc_per_node=8 backend.device=cuda model.name_or_path=<model>":
        "the reader's own cluster and launcher config; tests/sweeps submit to a local Slurm",
    "python -m rlkit.evaluate harness=lm_eval harness.tasks=[hellaswag,mmlu] model.name_or_path=outputs/<run>/final":
        "HellaSwag and MMLU download from the hub; tests/benchmarks run the bridge on local task definitions",
    "python -m rlkit algo=grpo reward=math cluster=split cluster.address=10.0.0.1:6379":
        "connects to a Ray cluster at 10.0.0.1; tests/cluster run against a local one",
    "python -m rlkit algo=grpo reward=math cluster=split cluster.address=10.0.0.1:6379 backend=fsdp2 "
    "backend.nproc_per_node=8 cluster.trainer.gpus=1 'cluster.trainer.resources={trainer_node: 1}' cluster.generators=8 "
    "cluster.generator.gpus=1 'cluster.generator.resources={generator_node: 1}' model.name_or_path=Qwen/Qwen2.5-0.5B-Instruct "
    "hydra.run.dir=/shared/runs/grpo-1":
        "GPU machines of a Ray cluster at 10.0.0.1; tests/cluster/test_multinode.py runs placement across two local raylets",
    "python -m rlkit.sweeps.optuna_trials <sweep dir> --metric eval/pref_accuracy --direction maximize":
        "<sweep dir> is the reader's finished Optuna sweep; tests/test_optuna_sweep.py runs it on real ones",
    "python -m rlkit.new plugin NAME: a new plugin package": "a line of the source layout; the next command runs it",
    "python -m rlkit algo=simpo": "needs the example plugin installed; tests/test_plugin.py installs it and trains algo=simpo",
}
RUN_AS_TYPED_BY = {
    "python -m rlkit": "tests/test_pipeline.py::test_default_command_sft_then_grpo_raises_accuracy",
    "python -m rlkit algo=dpo backend=fsdp2": "tests/test_headline_commands.py::test_dpo",
    "python -m rlkit algo=rm": "tests/test_headline_commands.py::test_reward_model",
    "python -m rlkit algo=grpo reward=math": "tests/test_headline_commands.py::test_online_rl",
    "python -m rlkit algo=ppo reward=math": "tests/test_headline_commands.py::test_online_rl",
    "python -m rlkit pipeline=sft_grpo_tools":
        "tests/environments/test_tools_pipeline.py::test_grpo_learns_to_call_the_tool_and_raises_accuracy_by_at_least_0_2",
}
COMPOSE_ONLY = {
    "python -m rlkit algo=sft backend=ddp backend.nproc_per_node=8": "8 ranks; tests/backends run ddp with 2",
    "python -m rlkit algo=dpo backend=fsdp2 backend.nproc_per_node=8 backend.param_dtype=bfloat16 "
    "backend.reduce_dtype=float32": "8 ranks; tests/backends run fsdp2 with 2",
    "python -m rlkit algo=grpo reward=math backend=fsdp2 backend.nproc_per_node=8 backend.tp_size=2":
        "8 ranks; tests/backends run fsdp2 + tensor parallel with 2",
    "python -m rlkit algo=grpo reward=math logger=[console,jsonl,mlflow] logger.mlflow.tracking_uri=http://127.0.0.1:5000":
        "needs an MLflow server; tests/loggers start one",
    "python -m rlkit -m algo=dpo algo.beta=0.05,0.1,0.2 trainer.lr=3e-4,1e-3": "a 6-job sweep; tests/sweeps run sweeps",
    "python -m rlkit -m +sweep=dpo_beta": "a 6-job sweep; tests/sweeps run sweeps",
    "python -m rlkit -m +sweep=grpo_group_kl hydra/launcher=submitit_local": "a 4-job sweep; tests/sweeps run it",
    "python -m rlkit -m +sweep=dpo_beta hydra/launcher=submitit_slurm hydra.launcher.partition=gpu":
        "a Slurm partition named gpu; tests/sweeps submit to a local Slurm",
    "python -m rlkit algo=grpo reward=math cluster=split": "Ray; tests/cluster run split placement",
    "python -m rlkit algo=grpo env=calculator reward=math cluster=split env.num_workers=2":
        "Ray; tests/environments/test_ray_episodes.py trains env=calculator with cluster=split and env.num_workers",
    "python -m rlkit algo=grpo reward=math cluster=split cluster.generators=4 backend=fsdp2 backend.nproc_per_node=4 "
    "cluster.trainer.gpus=1 cluster.generator.gpus=1": "GPUs and Ray",
    "python -m rlkit algo=grpo reward=math cluster=colocated backend=ddp backend.nproc_per_node=8 cluster.trainer.gpus=1":
        "GPUs and Ray",
    "python -m rlkit algo=grpo reward=math cluster=split cluster.async_rollouts=true algo.off_policy=tis":
        "Ray; tests/cluster run asynchronous rollouts",
    "python -m rlkit algo=grpo reward=math generator=vllm": "vLLM lives in .venv-vllm; tests/generators run it there",
    "python -m rlkit algo=grpo reward=math generator=vllm generator.enable_sleep_mode=true "
    "generator.gpu_memory_utilization=0.4 backend=fsdp2 model.dtype=bfloat16": "vLLM sleep mode needs CUDA",
    "python -m rlkit algo=grpo reward=math cluster=split cluster.generators=4 cluster.generator.gpus=1 generator=vllm":
        "GPUs, Ray and vLLM",
    "python -m rlkit -m +sweep=dpo_optuna model.name_or_path=<sft run>/final hydra/launcher=submitit_slurm":
        "an Optuna search of 12 trials; tests/test_optuna_sweep.py runs one on the local Slurm",
}
#: Appended to every training run (python -m rlkit without -m / --cfg).
FAST = ["trainer.max_steps=2", "trainer.eval_every=0", "trainer.save_every=0", "trainer.eval_samples=4",
        "trainer.eval_max_new_tokens=8", "trainer.batch_size=4", "trainer.micro_batch_size=8", "trainer.warmup_steps=0",
        "eval.samples=4", "eval.max_new_tokens=8"]
#: Added for online algorithms (their own keys would be unknown to sft/dpo).
FAST_ONLINE = {"grpo": ["algo.group_size=2", "algo.sampling.max_new_tokens=8"],
               "ppo": ["algo.samples_per_prompt=2", "algo.sampling.max_new_tokens=8"]}


def readme_commands(text: str) -> list[str]:
    """The README's `python -m rlkit...` commands, in order, each once."""
    found: list[str] = []
    lines, fenced, prose = text.splitlines(), False, []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            logical = line.strip()
            while logical.endswith("\\") and i + 1 < len(lines):
                i += 1
                logical = logical[:-1].rstrip() + " " + lines[i].strip()
            if not logical.startswith("#"):
                match = re.search(r"(?:^|\s)((?:[A-Z_]+=\S+\s+)*python -m rlkit(?:\.[\w.]+)?(?:\s+(?!#)[^\s`]+)*)", logical)
                if match:
                    found.append(match.group(1).strip())
        else:
            prose.append(line)
        i += 1
    # Inline spans may wrap across lines of a paragraph.
    found += re.findall(r"`((?:[A-Z_]+=\S+\s+)?python -m rlkit[^`]*)`", " ".join(prose))
    return list(dict.fromkeys(re.sub(r"\s+", " ", c) for c in found))


COMMANDS = readme_commands(README.read_text())


def test_the_lists_name_only_readme_commands():
    stale = [c for c in [*SKIP, *RUN_AS_TYPED_BY, *COMPOSE_ONLY] if c not in COMMANDS]
    assert not stale, f"no longer in README.md (remove them from the lists): {stale}"


@pytest.mark.parametrize("command", list(RUN_AS_TYPED_BY))
def test_commands_run_elsewhere_are_run_there_as_typed(command):
    """The named test exists and runs ``command``'s words unchanged."""
    path, name = RUN_AS_TYPED_BY[command].split("::")
    source = (README.parent / path).read_text()
    assert f"def {name}(" in source, f"{RUN_AS_TYPED_BY[command]} does not exist"
    missing = [word for word in shlex.split(command)[3:] if f'"{word}"' not in source]
    assert not missing, f"{path} does not run `{command}` as typed: no {missing}"


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory, tiny_model_dir):
    """Local files for what README commands would download or what only the reader has."""
    root = tmp_path_factory.mktemp("readme")
    qwen = build_family("qwen2", root / "qwen2", max_position_embeddings=32768)  # Qwen2.5-0.5B's context
    rows = root / "my.jsonl"
    rows.write_text("".join(f'{{"prompt": "What is {a}+{a}?", "completion": "{2 * a}", "answer": "{2 * a}"}}\n'
                            for a in range(16)))
    return {
        "paths": {"Qwen/Qwen2.5-0.5B-Instruct": str(qwen), "my.jsonl": str(rows), "outputs/<run>/final": str(tiny_model_dir),
                  "<run>/final": str(tiny_model_dir), "<SFT run>/final": str(tiny_model_dir),
                  "outputs/<sft run>/final": str(qwen), "<sft run>/final": str(tiny_model_dir), "openai/gsm8k": str(hub_fixtures.gsm8k(root / "gsm8k"))},
        "datasets": {"openai/gsm8k": str(root / "gsm8k"), "HuggingFaceH4/MATH-500": str(hub_fixtures.math500(root / "m500")),
                     "HuggingFaceH4/ultrafeedback_binarized": str(hub_fixtures.ultrafeedback(root / "uf")),
                     "google-research-datasets/mbpp": str(hub_fixtures.mbpp(root / "mbpp")),
                     "openai/openai_humaneval": str(hub_fixtures.humaneval(root / "humaneval"))},
        "qwen": str(qwen),
        "root": root,
    }


def as_written(command: str, stand_ins: dict) -> tuple[dict[str, str], str, list[str]]:
    """(environment, module, arguments) of ``command``, with local stand-ins for its paths."""
    command = command.split(" && ")[0]
    for placeholder, local in stand_ins["paths"].items():
        command = command.replace(placeholder, local)
    words = shlex.split(command)
    env = {}
    while "=" in words[0] and not words[0].startswith("python"):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    assert words[:2] == ["python", "-m"], command
    return env, words[2], words[3:]


def as_run(module: str, args: list[str], stand_ins: dict, run_dir: Path, compose) -> list[str]:
    """``args`` with the stand-ins for what the config would download, and FAST appended."""
    if module not in ("rlkit", "rlkit.evaluate") or "--cfg" in args or "--help" in args:
        return args
    cfg = compose([a for a in args if not a.startswith("-")])
    extra = [f"hydra.run.dir={run_dir}"]
    if cfg.data.get("name") == "hf" and cfg.data.path in stand_ins["datasets"]:
        extra.append(f"data.path={stand_ins['datasets'][cfg.data.path]}")  # a preset's hub dataset
    if not any(a.startswith("model.name_or_path=") for a in args) and cfg.model.name_or_path.startswith("Qwen/"):
        extra.append(f"model.name_or_path={stand_ins['qwen']}")  # a recipe's hub model
    if cfg.get("generator") and cfg.generator.name == "vllm":
        extra.append("generator=hf")  # a recipe's vLLM: not installed here (tests/generators run it in .venv-vllm)
    if module == "rlkit":
        extra += FAST
        if not cfg.stages or any(a.startswith("algo=") for a in args):  # one algorithm, not a pipeline
            extra += FAST_ONLINE.get(cfg.algo.name, [])
    else:
        extra += ["eval.samples=4", "eval.max_new_tokens=8"]
    return [*args, *extra]


def check_sweep_as_written(args: list[str]) -> int:
    """Compose every job of ``python -m rlkit -m args`` as its launcher would, checking each
    (Hydra refuses ``--cfg`` with ``-m``); the number of jobs, 0 for a search (Optuna) that
    picks them as it goes."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from rlkit.config import register_with_hydra
    from rlkit.config_check import BASIC_SWEEPER, check_run, check_sweep, sweep_jobs

    register_with_hydra()
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
            config = GlobalHydra.instance().config_loader().load_configuration(
                "config", overrides, run_mode=RunMode.MULTIRUN)
            if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
                check_run(config)
                return 0
            check_sweep(config)
            return len(sweep_jobs(config))
    finally:
        GlobalHydra.instance().clear()


def run_module(module: str, args: list[str], env: dict[str, str], monkeypatch) -> int:
    """``python -m module args`` in this process; its exit status."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", [module, *args])
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        GlobalHydra.instance().clear()
    return 0


@pytest.mark.slow
@pytest.mark.usefixtures("datasets_cache")
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command, stand_ins, compose, tmp_path, monkeypatch, capfd):
    if command in SKIP:
        pytest.skip(SKIP[command])
    if command in RUN_AS_TYPED_BY:
        pytest.skip(f"run as typed by {RUN_AS_TYPED_BY[command]}")
    env, module, args = as_written(command, stand_ins)
    if command in COMPOSE_ONLY and "-m" in args:
        jobs = check_sweep_as_written(args)
        assert jobs != 1, f"{command} is a sweep of one job"
        return
    args = [*args, "--cfg", "job"] if command in COMPOSE_ONLY else as_run(module, args, stand_ins, tmp_path / "run", compose)
    monkeypatch.chdir(tmp_path)  # outputs/ and multirun/ of commands without hydra.run.dir
    status = run_module(module, args, env, monkeypatch)
    out, err = capfd.readouterr()
    assert status == 0, f"{command}\nran as: python -m {module} {' '.join(args)}\n{(out + err)[-4000:]}"
