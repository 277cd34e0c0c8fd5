"""rlkit's submitit launchers: hydra-submitit-launcher's, with records, checks and shapes.

``hydra/launcher=submitit_slurm`` and ``submitit_local`` instantiate these classes (see
``conf/hydra/launcher/``). Over the plugin's launchers they add:

* **JSON records** (:mod:`rlkit.sweeps.records`): the launcher appends what it submitted
  (job id, number, overrides, resources, log paths); each job records its start, its requeue
  and its end. The sweep summary reads these instead of submitit's pickles.
* **One array per resource shape** (Slurm): each job's ``hydra.launcher`` node is resolved
  against that job's own config, so a search space that changes resources
  (``backend.nproc_per_node=1,2`` -> ``tasks_per_node`` 1 and 2) submits one job array per
  distinct request; results come back in job order, one summary covers them all.
* **A resource check before submitting** (Slurm, ``check_resources``): a request that no
  node of the partition can ever run stops the sweep with one line naming the key to set
  (:func:`rlkit.sweeps.slurm_resources.check_request`).
* **No endless waits** (Slurm, ``give_up_pending_s``): a job pending for a reason that does
  not clear by itself (``PartitionConfig``, ``ReqNodeNotAvail``...) for that long is
  reported, the sweep's unfinished jobs are cancelled and the sweep fails with the reason.
* **Requeue on time limit**: submitit's signal handler calls :meth:`checkpoint` when Slurm
  signals the coming time limit (``signal_delay_s`` before it); the job is requeued with the
  same arguments (up to ``max_num_timeout`` times) and rlkit resumes it from its run
  directory's latest checkpoint. The job's record counts the requeues.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as plugin
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from rlkit.sweeps.records import (
    Submission,
    append_submissions,
    read_job_records,
    update_job_record,
)
from rlkit.sweeps.slurm_resources import (
    Partition,
    Request,
    check_request,
    describe_request,
    hopeless_reason,
    query_partition,
)

__all__ = ["LocalLauncher", "SlurmLauncher", "UnschedulableJobError"]

log = logging.getLogger(__name__)

#: rlkit's own keys of ``hydra.launcher`` (not passed to submitit).
RLKIT_KEYS = ("check_resources", "give_up_pending_s")


class UnschedulableJobError(CompactHydraException):
    """A job can never start with what it asks for (message: the key to change).

    A compact Hydra exception: ``python -m rlkit -m`` prints its one-line message alone."""


class _RecordingLauncher(plugin.BaseSubmititLauncher):
    """Writes the JSON records; the job side runs in the job's own process."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.sweep_dir: Path | None = None  # set when launching; travels with the pickle
        self._requeueing = False

    # ------------------------------------------------------------------ job side

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        import submitit

        env = submitit.JobEnvironment()
        recording = self.sweep_dir is not None and env.global_rank == 0
        self._requeueing = False
        if recording:
            restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
            update_job_record(
                self.sweep_dir, env.job_id, state="running", job_num=job_num, started=True,
                requeues=int(restarts) if restarts.isdigit() else 0,
            )
        try:
            result = super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        except BaseException as exc:
            if self._requeued_by(exc):
                raise SystemExit(-1) from exc
            if recording:
                update_job_record(self.sweep_dir, env.job_id, state="failed", error=_describe(exc))
            raise
        if result.status == JobStatus.FAILED and self._requeued_by(result._return_value):
            # Submitit requeued the job and exits this attempt with SystemExit; the run (or a
            # library it was in) turned that into an error. Exit without a result: a result
            # file would tell the launcher that the job is over while Slurm runs it again.
            raise SystemExit(-1)
        if recording:
            if result.status != JobStatus.FAILED:
                update_job_record(self.sweep_dir, env.job_id, state="completed")
            else:
                error = _describe(result._return_value)  # (return_value would raise it)
                update_job_record(self.sweep_dir, env.job_id, state="failed", error=error)
        return result

    def _requeued_by(self, exc: Any) -> bool:
        """Did ``exc`` end this attempt because submitit is requeuing the job? (Its exit after
        the requeue, or the run's reaction to Slurm's SIGTERM, however wrapped; not submitit's
        refusal to requeue once ``max_num_timeout`` is spent, which it raises as
        UncompletedJobError: that ends the job.)"""
        from submitit.core.utils import UncompletedJobError

        if not self._requeueing:
            return False
        seen = set()
        while isinstance(exc, BaseException) and id(exc) not in seen:
            if isinstance(exc, UncompletedJobError):
                return False
            seen.add(id(exc))
            exc = exc.__cause__ or exc.__context__
        return True

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on Slurm's time-limit (or preemption) signal, before requeuing.

        The run needs nothing saved here: the requeued job runs the same Hydra job in the same
        run directory, which resumes from its latest checkpoint (``trainer.save_every``).
        """
        import submitit

        self._requeueing = True
        if self.sweep_dir is not None:
            update_job_record(self.sweep_dir, submitit.JobEnvironment().job_id, state="requeued")
        return super().checkpoint(*args, **kwargs)

    # --------------------------------------------------------------- launcher side

    def _prepare_sweep_dir(self) -> Path:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        self.sweep_dir = sweep_dir
        return sweep_dir

    def _executor(self, params: dict[str, Any]) -> Any:
        """A submitit executor for ``params`` (as hydra-submitit-launcher builds it)."""
        import submitit

        init_keys = {"submitit_folder", "max_num_timeout"}
        init = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in base else f"{self._EXECUTOR}_{key}": value
                for key, value in params.items()
                if key not in init_keys
            }
        )
        return executor

    def _submit(self, params: dict[str, Any], jobs: Sequence[tuple[int, list[str]]]) -> list[Any]:
        """One array of ``jobs`` (number, overrides) with ``params``; records it."""
        assert self.sweep_dir is not None
        for num, overrides in jobs:
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
        args = [
            (overrides, "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
            for num, overrides in jobs
        ]
        submitted = self._executor(params).map_array(self, *zip(*args))
        tasks = int(params.get("tasks_per_node") or 1) * int(params.get("nodes") or 1)
        resources = {k: v for k, v in params.items() if k != "submitit_folder"}
        append_submissions(
            self.sweep_dir,
            [
                Submission(
                    job_id=job.job_id,
                    job_num=num,
                    overrides=list(overrides),
                    resources=resources,
                    stderr=[str(_task_paths(job, task).stderr) for task in range(tasks)],
                    submitted_at=time.time(),
                )
                for job, (num, overrides) in zip(submitted, jobs)
            ],
        )
        return submitted

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        sweep_dir = self._prepare_sweep_dir()
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        submitted = self._submit(dict(self.params), jobs)
        return [job.results()[0] for job in submitted]


def _task_paths(job: Any, task: int) -> Any:
    from submitit.core.utils import JobPaths

    return JobPaths(job.paths.folder, job_id=job.job_id, task_id=task)


def _describe(exc: Any) -> str:
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else "job failed"


class LocalLauncher(_RecordingLauncher, plugin.LocalLauncher):
    """``hydra/launcher=submitit_local``: each job a local process, with rlkit's records."""


class SlurmLauncher(_RecordingLauncher, plugin.SlurmLauncher):
    """``hydra/launcher=submitit_slurm``: arrays per resource shape, checked, watched."""

    #: Seconds between two looks at the queue while waiting for the jobs.
    poll_s = 2.0

    def __init__(self, check_resources: bool, give_up_pending_s: float | None, **params: Any) -> None:
        # (the defaults are those of the launcher's schema, rlkit.sweeps.launchers)
        super().__init__(**params)
        self.check_resources = check_resources
        self.give_up_pending_s = give_up_pending_s

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        t0 = time.perf_counter()
        shapes = self._shapes(jobs)
        t1 = time.perf_counter()
        if self.check_resources:
            self._check(shapes)
        log.info(
            f"{len(jobs)} job(s), {len(shapes)} resource request(s): resolved in {t1 - t0:.2f}s"
            + (f", checked against the partition in {time.perf_counter() - t1:.3f}s" if self.check_resources else "")
        )
        sweep_dir = self._prepare_sweep_dir()
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        submitted: dict[int, Any] = {}
        requests: dict[str, tuple[Request, str | None]] = {}  # job id -> request, partition
        for params, group in shapes.values():
            for (num, _), job in zip(group, self._submit(params, group)):
                submitted[num] = job
                requests[job.job_id] = (Request.from_params(params), params.get("partition"))
        self._wait(submitted, requests)
        return [submitted[num].results()[0] for num, _ in jobs]

    def _shapes(self, jobs: Sequence[tuple[int, list[str]]]) -> dict[str, tuple[dict[str, Any], list]]:
        """Jobs grouped by their resolved ``hydra.launcher`` (one array per distinct one)."""
        assert self.hydra_context is not None and self.config is not None
        shapes: dict[str, tuple[dict[str, Any], list]] = {}
        for num, overrides in jobs:
            job_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            node = OmegaConf.to_container(job_config.hydra.launcher, resolve=True)
            assert isinstance(node, dict)
            params = {
                str(k): v for k, v in node.items() if k != "_target_" and k not in RLKIT_KEYS
            }
            key = json.dumps(params, sort_keys=True, default=str)
            shapes.setdefault(key, (params, []))[1].append((num, overrides))
        return shapes

    def _check(self, shapes: dict[str, tuple[dict[str, Any], list]]) -> None:
        cache: dict[Any, Partition | list[str] | None] = {}
        for params, group in shapes.values():
            name = params.get("partition")
            if name not in cache:
                cache[name] = query_partition(name)
            partition = cache[name]
            if partition is None:
                log.warning("cannot ask Slurm about the partition (scontrol); not checking resources")
                return
            if isinstance(partition, list):
                raise UnschedulableJobError(
                    f"Slurm partition '{name}' does not exist (partitions: {', '.join(partition)}): "
                    f"set hydra.launcher.partition={partition[0] if partition else '...'}"
                )
            request = Request.from_params(params)
            what = f"job(s) {_numbers(group)} ({describe_request(request)})"
            problem = check_request(request, partition, what)
            if problem is not None:
                raise UnschedulableJobError(problem)

    def _wait(self, submitted: dict[int, Any], requests: dict[str, tuple[Request, str | None]]) -> None:
        """Until every job is done; fails when one stays pending for a hopeless reason: one
        that waits for a limit to change, or ``Resources`` for a request that no node in
        service can run (nodes went down or were drained after the submission)."""
        if self.give_up_pending_s is None:
            return
        numbers = {job.job_id: num for num, job in submitted.items()}
        stuck_since: dict[str, float] = {}
        while not all(job.done() for job in submitted.values()):
            now = time.monotonic()
            waiting = [job.job_id for job in submitted.values() if not job.done()]
            reasons = _pending_reasons(waiting)
            stuck = {job_id: reason for job_id, reason in reasons.items() if hopeless_reason(reason)}
            partitions: dict[str | None, Any] = {}
            for job_id in [j for j, reason in reasons.items() if reason == "Resources"]:
                request, name = requests[job_id]
                if name not in partitions:
                    partitions[name] = query_partition(name)
                if isinstance(partitions[name], Partition):
                    problem = check_request(request, partitions[name], "its request", in_service_only=True)
                    if problem is not None:
                        stuck[job_id] = f"Resources; {problem}"
            stuck_since = {job_id: stuck_since.get(job_id, now) for job_id in stuck}
            for job_id, reason in stuck.items():
                if stuck_since[job_id] == now:
                    log.warning(
                        f"Slurm job {job_id} (job #{numbers.get(job_id)}) is pending for a reason "
                        f"that does not clear by itself: {reason}; cancelling the sweep in "
                        f"{self.give_up_pending_s:.0f}s unless it starts"
                    )
            expired = [j for j, since in stuck_since.items() if now - since >= self.give_up_pending_s]
            if expired:
                job_id = expired[0]
                reason = f"stayed pending for {now - stuck_since[job_id]:.0f}s ({stuck[job_id]})"
                self._cancel_unfinished(submitted, f"cancelled: job {job_id} {reason}")
                raise UnschedulableJobError(
                    f"Slurm job {job_id} (job #{numbers.get(job_id)}) {reason}; cancelled the "
                    "sweep's unfinished jobs (`scontrol show job`, `scontrol show partition` tell "
                    "why; hydra.launcher.give_up_pending_s=null would wait)"
                )
            time.sleep(self.poll_s)

    def _cancel_unfinished(self, submitted: dict[int, Any], why: str) -> None:
        """scancel the jobs that have not ended; record those that never started as failed."""
        assert self.sweep_dir is not None
        started = read_job_records(self.sweep_dir)
        for num, job in submitted.items():
            if job.done():
                continue
            job.cancel(check=False)
            if job.job_id not in started:
                update_job_record(self.sweep_dir, job.job_id, state="failed", job_num=num, error=why)


def _numbers(group: Sequence[tuple[int, list[str]]]) -> str:
    return ",".join(str(num) for num, _ in group)


def _pending_reasons(job_ids: Sequence[str]) -> dict[str, str]:
    """Job id -> Slurm's reason, for the pending ones among ``job_ids`` (``squeue``)."""
    if not job_ids:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-t", "PD", "-j", ",".join(job_ids), "-o", "%i|%r"],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    reasons = {}
    for line in out.splitlines():
        job_id, _, reason = line.partition("|")
        if job_id.strip():
            reasons[job_id.strip()] = reason.strip()
    return reasons
