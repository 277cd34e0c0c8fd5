"""The typed ``cluster`` config: where the Ray actors run and how many there are.

Kept free of Ray and torch imports: ``rlkit.config`` puts it in the top-level schema, and
composing a config (``--help``, a sweep's submission) must stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

PLACEMENTS = ("split", "colocated")


@dataclass
class WorkerResources:
    """Ray resources of one actor (fractions allowed)."""

    cpus: float = 1.0
    gpus: float = 0.0
    #: Custom Ray resources of each actor, a mapping name -> amount, e.g. ``{node_b: 1}``:
    #: only nodes started with ``ray start --resources='{"node_b": 1}'`` can host it, so this
    #: steers actors onto chosen nodes. Typed Any (checked by ``ClusterConfig.validate``)
    #: because Hydra refuses new keys in a typed dict: ``resources={node_b: 1}`` would need a ``+``.
    resources: Any = None

    def ray_resources(self) -> dict[str, float]:
        """All of them as Ray names them (``CPU``, ``GPU``, custom), zeros left out."""
        named = {"CPU": self.cpus, "GPU": self.gpus, **(self.resources or {})}
        return {name: float(amount) for name, amount in named.items() if amount > 0}

    def check(self, key: str) -> None:
        """Raise ValueError naming ``key`` (``cluster.trainer`` ...) for a negative or malformed amount."""
        if self.cpus < 0 or self.gpus < 0:
            raise ValueError(f"{key}: cpus and gpus must be >= 0, got cpus={self.cpus:g} gpus={self.gpus:g}")
        if self.resources is None:
            return
        if not isinstance(self.resources, Mapping):
            raise ValueError(f"{key}.resources must map Ray resource names to amounts, e.g. {{node_b: 1}}; "
                             f"got {self.resources!r}")
        for name, amount in self.resources.items():
            if name in ("CPU", "GPU"):
                raise ValueError(f"{key}.resources.{name}: set {key}.{name.lower()}s instead")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"{key}.resources.{name} must be a number >= 0, got {amount!r}")


@dataclass
class ClusterConfig:
    """Trainer ranks (``backend.nproc_per_node`` of them) and generator actors on Ray."""

    #: An existing Ray cluster ("auto", "10.0.0.1:6379", "ray://host:10001"); null: the one
    #: in RAY_ADDRESS if set, else rlkit starts a local Ray for the run and stops it at the end.
    address: Optional[str] = None
    #: split: generators and trainer ranks on separate resources, sized independently;
    #: colocated: generator i shares trainer rank i's devices and they take turns.
    placement: str = "split"
    #: Generator actors (null: one per trainer rank). Colocated: one per trainer rank.
    generators: Optional[int] = None
    trainer: WorkerResources = field(default_factory=WorkerResources)
    #: Colocated generators use their trainer rank's GPUs; leave ``generator.gpus`` at 0 then.
    generator: WorkerResources = field(default_factory=WorkerResources)
    #: Logical CPUs and GPUs of a local Ray (null: this machine's; CPUs are raised to what
    #: the actors ask for, since a CPU here is a scheduling unit, not a pinned core).
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    #: Sample the next step's prompts while this step trains (split placement only); the
    #: algorithm corrects for the older weights (``algo.off_policy``).
    async_rollouts: bool = False
    #: Most optimizer steps a rollout's weights may lag behind the trainer (async only);
    #: older rollouts are dropped and sampled again.
    max_staleness: int = 1
    #: Restarts of a generator actor that dies (-1: no limit); its prompts are sampled again.
    max_restarts: int = 3
    #: Seconds to wait for a restarted generator actor before the run fails.
    restart_timeout_s: float = 300.0
    #: Session files of a local Ray (null: a new directory in the system's temp dir,
    #: removed at the end). Ray's socket paths must stay under ~100 characters.
    temp_dir: Optional[str] = None

    def num_generators(self, trainer_ranks: int) -> int:
        return self.generators if self.generators is not None else trainer_ranks

    def validate(self, trainer_ranks: int) -> None:
        """Raise ValueError naming the offending ``cluster.*`` key."""
        if self.placement not in PLACEMENTS:
            raise ValueError(f"cluster.placement: unknown {self.placement!r}; choose one of {', '.join(PLACEMENTS)}")
        generators = self.num_generators(trainer_ranks)
        if generators < 1:
            raise ValueError(f"cluster.generators must be >= 1, got {generators}")
        self.trainer.check("cluster.trainer")
        self.generator.check("cluster.generator")
        if self.placement == "colocated":
            if generators != trainer_ranks:
                raise ValueError(
                    f"cluster.generators={generators} with cluster.placement=colocated: colocated generators "
                    f"share their trainer rank's devices, one per rank (backend.nproc_per_node={trainer_ranks}); "
                    "use cluster.placement=split to size them independently")
            if self.generator.gpus:
                raise ValueError("cluster.generator.gpus: colocated generators use their trainer rank's GPUs "
                                 "(cluster.trainer.gpus); leave it 0")
            if self.async_rollouts:
                raise ValueError("cluster.async_rollouts=true needs cluster.placement=split: colocated generators "
                                 "and trainers share devices and take turns, so nothing can overlap")
        if self.max_staleness < 1:
            raise ValueError(f"cluster.max_staleness must be >= 1 (steps), got {self.max_staleness}")
        if self.max_restarts < -1:
            raise ValueError(f"cluster.max_restarts must be >= -1 (-1: no limit), got {self.max_restarts}")


@dataclass
class RayGeneratorConfig:
    """``generator=ray``: set up by the cluster driver, never chosen on the command line."""

    component: ClassVar[str] = "rlkit.cluster.ray_generator:RayGenerator"

    #: Names of the generator actors and of the weight store (set by the driver).
    actors: list[str] = field(default_factory=list)
    store: str = ""
    namespace: str = "rlkit"
    #: 0: synchronous; k >= 1: asynchronous rollouts at most k steps stale.
    max_staleness: int = 0
    restart_timeout_s: float = 300.0
    #: The run's placement group (hex id), its placement log and its id (see rlkit.cluster.nodes).
    placement_group: str = ""
    placement_log: str = ""
    run_id: str = ""
