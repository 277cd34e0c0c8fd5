"""Ray orchestration: trainer and generator worker groups for online RL past one process.

``cluster=split`` or ``cluster=colocated`` runs the ordinary training loop
(:func:`rlkit.rank.train_rank`) in a group of Ray actors, one per trainer rank, and serves its
generator from a second group of Ray actors, each holding its own copy of the policy.
Nothing in the loop or the algorithms knows about Ray: the trainer ranks see a
:class:`~rlkit.cluster.ray_generator.RayGenerator`, an ordinary generator component.

Modules, one idea each:

* :mod:`~rlkit.cluster.config` -- the typed ``cluster`` config (importable without Ray or torch);
* :mod:`~rlkit.cluster.session` -- connecting to, or starting, the Ray cluster;
* :mod:`~rlkit.cluster.placement` -- placement groups: colocated or split devices;
* :mod:`~rlkit.cluster.nodes` -- which node each actor runs on (``placement.jsonl``), lost nodes;
* :mod:`~rlkit.cluster.generator_group` -- generator actors, sharding, weight pushes, restarts;
* :mod:`~rlkit.cluster.prefetch` -- asynchronous rollouts with a staleness bound;
* :mod:`~rlkit.cluster.ray_generator` -- the generator component the trainer ranks use;
* :mod:`~rlkit.cluster.trainer_group` -- trainer ranks as actors running ``train``;
* :mod:`~rlkit.cluster.driver` -- one run: all of the above, then clean-up.

This package must stay importable without Ray and torch (``rlkit.config`` imports the schema).
"""
