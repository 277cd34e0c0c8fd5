"""rlkit's launcher presets (hydra/launcher=submitit_slurm|submitit_local) and sweep presets
(+sweep=...), composed as `python -m rlkit -m` would compose them; nothing is launched."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from omegaconf import OmegaConf

from rlkit.sweeps import launchers

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

SLURM = "hydra_plugins.rlkit_submitit.rlkit_submitit.SlurmLauncher"
LOCAL = "hydra_plugins.rlkit_submitit.rlkit_submitit.LocalLauncher"
PLUGIN_SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
PLUGIN_LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"


def compose_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_module

    from rlkit.config import register_with_hydra

    register_with_hydra()
    with warnings.catch_warnings():
        # e.g. Hydra's "validated against ConfigStore schema with the same name"
        warnings.simplefilter("error")
        with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=True)


def launcher(overrides: list[str]) -> dict:
    """The keyword arguments Hydra gives the launcher (interpolations resolved)."""
    cfg = compose_with_hydra(overrides)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


@pytest.mark.parametrize(
    ("overrides", "tasks", "gpus", "mem"),
    [
        ([], 1, None, 32),  # backend=single: one task, 4 CPUs, 8 GB per CPU
        (["backend=ddp", "backend.nproc_per_node=2"], 2, None, 64),
        (["backend=fsdp2", "backend.nproc_per_node=8", "backend.device=cuda"], 8, 8, 256),
        (["backend=ddp", "backend.nproc_per_node=4", "backend.device=cuda:0"], 4, 4, 128),
        (["backend=auto"], 1, None, 32),  # nproc_per_node=0 ("one per GPU"): one task
        (["backend=ddp", "backend.nproc_per_node=2", "hydra.launcher.cpus_per_task=1"], 2, None, 16),
    ],
)
def test_slurm_resources_follow_the_run_config(overrides, tasks, gpus, mem):
    params = launcher(["hydra/launcher=submitit_slurm", *overrides])
    assert params["_target_"] == SLURM
    assert (params["tasks_per_node"], params["gpus_per_node"], params["mem_gb"]) == (tasks, gpus, mem)
    assert params["timeout_min"] == 240 and params["max_num_timeout"] == 3
    assert params["name"] == "rlkit"
    assert params["submitit_folder"].endswith("/.submitit/%j")
    assert params["check_resources"] is True and params["give_up_pending_s"] == 300


def test_slurm_overrides_win_and_are_type_checked():
    params = launcher([
        "hydra/launcher=submitit_slurm", "backend=ddp", "backend.nproc_per_node=2",
        "hydra.launcher.partition=gpu", "hydra.launcher.tasks_per_node=1", "hydra.launcher.mem_gb=500",
        "hydra.launcher.gpus_per_node=8", "hydra.launcher.timeout_min=30", "hydra.launcher.account=lab",
        "+hydra.launcher.additional_parameters={mail-type: END}",
    ])
    assert params["partition"] == "gpu" and params["account"] == "lab"
    assert (params["tasks_per_node"], params["mem_gb"], params["gpus_per_node"]) == (1, 500, 8)
    assert params["additional_parameters"] == {"mail-type": "END"}
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_with_hydra(["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=soon"])
    with pytest.raises(ConfigCompositionException):
        compose_with_hydra(["hydra/launcher=submitit_slurm", "hydra.launcher.no_such_key=1"])
    with pytest.raises(ConfigCompositionException):
        compose_with_hydra(["hydra/launcher=submitit_slurm", "hydra.launcher.check_resources=maybe"])


def test_local_launcher_and_the_plugins_own_configs():
    params = launcher(["hydra/launcher=submitit_local", "backend=ddp", "backend.nproc_per_node=2"])
    assert params["_target_"] == LOCAL
    assert params["tasks_per_node"] == 1  # the job starts its own ranks
    assert params["timeout_min"] == 240
    raw = launcher(["hydra/launcher=submitit_slurm_base", "backend=ddp", "backend.nproc_per_node=2"])
    assert raw["_target_"] == PLUGIN_SLURM and raw["tasks_per_node"] == 1 and raw["timeout_min"] == 60
    assert "check_resources" not in raw
    assert launcher(["hydra/launcher=submitit_local_base"])["_target_"] == PLUGIN_LOCAL
    launchers.register_launchers()  # idempotent
    assert launcher(["hydra/launcher=submitit_slurm"])["_target_"] == SLURM


def test_resolvers():
    assert [launchers.slurm_tasks(n) for n in (None, 0, 1, 3, "2")] == [1, 1, 1, 3, 2]
    assert launchers.slurm_gpus("cuda", 2) == 2 and launchers.slurm_gpus("cuda:1", None) == 1
    assert launchers.slurm_gpus("auto", 2) is None and launchers.slurm_gpus("cpu", 2) is None
    assert launchers.slurm_mem_gb(None, 2) == 2 * launchers.GB_PER_CPU
    assert launchers.slurm_mem_gb(4, 2, 2) == 16


@pytest.mark.parametrize(
    ("preset", "algo", "params", "metric"),
    [
        ("dpo_beta", "dpo", {"algo.beta": "0.05,0.1,0.2", "trainer.lr": "3e-4,1e-3"}, "eval/pref_accuracy"),
        ("grpo_group_kl", "grpo", {"algo.group_size": "4,8", "algo.kl_beta": "0.0,0.04"}, "eval/accuracy"),
    ],
)
def test_sweep_presets(compose, preset, algo, params, metric):
    import itertools

    from rlkit.config import typed_run_config
    from rlkit.build import resolve_components

    cfg = compose_with_hydra([f"+sweep={preset}", "hydra/launcher=submitit_slurm"])
    assert cfg.algo.name == algo
    assert OmegaConf.to_container(cfg.hydra.sweeper.params) == params
    assert cfg.sweep_summary.metric == metric
    assert cfg.trainer.max_steps <= 30 and cfg.trainer.save_every > 0  # tiny, resumable
    assert cfg.hydra.launcher.tasks_per_node == 1
    if algo == "grpo":
        assert cfg.reward.name == "math"
    # Every job of the grid is a valid config of its components.
    for values in itertools.product(*(v.split(",") for v in params.values())):
        job = [f"{key}={value}" for key, value in zip(params, values)]
        parts = resolve_components(typed_run_config(compose([f"+sweep={preset}", *job])))
        assert type(parts["algo"].config).__name__.lower().startswith(algo)


def test_command_line_values_replace_a_preset_dimension():
    cfg = compose_with_hydra(["+sweep=dpo_beta", "algo.beta=0.3"])
    # Hydra's sweeper lets the command line win for algo.beta; trainer.lr stays swept.
    assert cfg.hydra.sweeper.params["trainer.lr"] == "3e-4,1e-3"
    assert "algo.beta=0.3" in cfg.hydra.overrides.task


def test_sweep_modules_do_not_import_torch():
    code = (
        "import sys, rlkit.sweeps.callback, rlkit.sweeps.launchers, rlkit.sweeps.summary; "
        "rlkit.sweeps.launchers.register_launchers(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
