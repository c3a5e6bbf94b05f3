"""Spec -> :class:`Plan`: what Tune needs (searcher, scheduler, trainable), built and checked
before Ray starts; and what one trial asks Ray for.

``prepare`` (``prepare_loaded``: the loaded spec too) does every check that can fail before anything starts, as these steps:

1. :func:`_built` -- search space, searcher and scheduler, trainable (a :class:`SpecError`
   names the field, in the manifest's terms for a Katib manifest);
2. :func:`_for_command_trials` -- Katib's PBT for command trials, and the stand-in programs;
3. :func:`_placed_searcher` -- the user's own searcher, the searcher actor around it, and the
   objective's metric strategy around both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..spec import ExperimentSpec, LoadedSpec, SpecError, load_document, parse_count, parse_cpu, parse_memory

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    from ..search.actor.driver import ActorSearcher

SpecSource = str | os.PathLike[str] | Mapping[str, Any] | ExperimentSpec


@dataclass
class Plan:
    """Everything an experiment needs, built and checked before Ray starts."""

    spec: ExperimentSpec
    searcher: "Searcher"
    scheduler: "TrialScheduler | None"
    trainable: Callable[..., Any]
    actor: Any = None  # the ActorSearcher inside ``searcher``, if any
    notes: list[str] = field(default_factory=list)
    source_text: str | None = None
    katib_manifest: bool = False
    #: where a field of the spec is in the file it came from (a manifest's own path)
    field_of: Callable[[str], str] = str

    def close_actor(self) -> None:
        """Stop the searcher actor, if there is one (a plan that will not run)."""
        if self.actor is not None:
            self.actor.close()


@dataclass
class _Built:
    """What the spec alone builds: searcher, scheduler and trainable."""

    searcher: "Searcher"
    scheduler: "TrialScheduler | None"
    trainable: Callable[..., Any]


def prepare(source: SpecSource, searcher: "Searcher | None" = None, *, searcher_actor: bool = True) -> Plan:
    return prepare_loaded(source, searcher, searcher_actor=searcher_actor)[1]


def prepare_loaded(source: SpecSource, searcher: "Searcher | None", *, searcher_actor: bool) -> tuple[LoadedSpec, Plan]:
    """The loaded spec (its notes and warnings) and the plan built from it."""
    loaded = load_document(Path(source) if isinstance(source, os.PathLike) else source)
    spec = loaded.spec
    built = _built(loaded)
    notes = list(loaded.notes) + [f"warning: {w}" for w in loaded.warnings]
    trainable = _for_command_trials(spec, built, notes)
    placed, actor = _placed_searcher(spec, built.searcher, searcher, searcher_actor)
    source_text = Path(loaded.origin).read_text() if loaded.origin and loaded.katib_manifest else None
    return loaded, Plan(spec, placed, built.scheduler, trainable, actor, notes, source_text, loaded.katib_manifest,
                        loaded.field_of)


def _built(loaded: LoadedSpec) -> _Built:
    """The searcher, scheduler and trainable the spec names; the searcher's notes and the
    parameter warnings go into ``loaded``. A SpecError names the field where the file has it."""
    from ..search import create_search
    from ..search.space import SearchSpace
    from ..stopping.rules import create_scheduler
    from ..trials import check_builtin_parameters, resolve_trainable

    spec = loaded.spec
    try:
        space = SearchSpace.from_spec(spec)
        search = create_search(spec.algorithm, space, spec.objective, spec.nas_config, parallel_trials=spec.parallel_trials,
                               targets=spec.targets)
        loaded.notes.extend(search.notes)
        scheduler = create_scheduler(spec.early_stopping)
        if search.scheduler is not None:  # pbt steers the running trials itself
            if scheduler is not None:
                raise SpecError("earlyStopping", f"algorithm {spec.algorithm.name!r} schedules the trials itself; remove earlyStopping")
            scheduler = search.scheduler
        loaded.warnings.extend(check_builtin_parameters(spec))
        return _Built(search.searcher, scheduler, resolve_trainable(spec))
    except SpecError as exc:
        raise loaded.relabel(exc) from None


def _for_command_trials(spec: ExperimentSpec, built: _Built, notes: list[str]) -> Callable[..., Any]:
    """The trainable, as Katib's PBT runs command trials (in segments); notes about the
    command's checkpoint directory and the stand-in programs go into ``notes``."""
    from ..search.pbt import PopulationScheduler
    from ..trials import command_trial
    from ..trials.trainable import command_trainable
    from ..trials.katib_programs import stand_ins_used

    trainable = built.trainable
    command = command_trial(spec)
    if command is None:
        return trainable
    if isinstance(built.scheduler, PopulationScheduler):  # Katib's PBT for commands: segments
        command = built.scheduler.for_command_trials(command, spec.max_trials)
        trainable = command_trainable(command)
        assert command.segments is not None  # for_command_trials sets them
        if not command.segments.mentioned_in(command):
            notes.append(f"pbt: the trial command does not mention suggestion_trial_dir {built.scheduler.suggestion_trial_dir}, "
                         "so its process gets no checkpoint directory and exploits copy nothing")
    if not isinstance(command.argv, str):
        for path in stand_ins_used(list(command.argv)):
            notes.append(f"{path} is not on this machine: trials run raytune-k8s's stand-in program for it "
                         "(same flags and metric output, offline MNIST)")
    return trainable


def _placed_searcher(spec: ExperimentSpec, built: "Searcher", own: "Searcher | None", searcher_actor: bool
                     ) -> tuple["Searcher", "ActorSearcher | None"]:
    """The searcher Tune gets (the spec's, or ``own``: a Python user's Ray Tune searcher), in
    its own actor when ``searcher_actor``, read through the objective's metric strategy; and
    that actor."""
    from ..search.strategy import ObjectiveStrategy

    searcher = built
    if own is not None:
        own.set_search_properties(spec.objective.metric, spec.objective.mode, {})
        searcher = own
    actor = None
    if searcher_actor:
        from ..search.actor.driver import ActorSearcher

        searcher = actor = ActorSearcher(searcher, prefetch=spec.parallel_trials, actor_options=searcher_resources(spec),
                                         first_here=own is None)  # a user's searcher may be slow to start
    metrics = [*spec.targets.metrics, *(c.metric for c in spec.constraints)]
    return ObjectiveStrategy(searcher, {m: spec.objective.strategy(m) for m in metrics}), actor


def searcher_resources(spec: ExperimentSpec) -> dict[str, float]:
    """Ray actor options for the searcher actor (``algorithm.resources``; default 0 CPUs)."""
    res = spec.algorithm.resources
    if res is None:
        return {}
    out: dict[str, float] = {"num_cpus": parse_cpu(res.cpu)}
    if parse_count(res.gpu):
        out["num_gpus"] = parse_count(res.gpu)
    if res.memory is not None:
        out["memory"] = float(parse_memory(res.memory))
    return out


def trial_resources(spec: ExperimentSpec) -> dict[str, float]:
    """What one trial asks Ray for: the shorthand's resources, or the primary container's; a
    distributed trial's whole gang (the sum of its replicas')."""
    bundles = replica_bundles(spec)
    if bundles is not None:
        total = {"cpu": sum(b.get("CPU", 0.0) for b in bundles), "gpu": sum(b.get("GPU", 0.0) for b in bundles)}
        if any("memory" in b for b in bundles):
            total["memory"] = sum(b.get("memory", 0.0) for b in bundles)
        return total
    if spec.trial_template is not None:
        from ..spec import container_trial

        res = container_trial(spec.trial_template, None, []).resources
    else:
        assert spec.trial is not None
        res = spec.trial.resources
    out = {"cpu": parse_cpu(res.cpu), "gpu": parse_count(res.gpu)}
    if res.memory is not None:
        out["memory"] = float(parse_memory(res.memory))
    return out


def replica_bundles(spec: ExperimentSpec) -> list[dict[str, float]] | None:
    """A distributed trial's Ray bundles, one per replica (None: the trial is one process)."""
    from ..trials import shorthand_gang_of

    if spec.trial_template is not None:
        from ..spec import container_trial

        gang = container_trial(spec.trial_template, None, []).gang
    else:
        assert spec.trial is not None
        gang = shorthand_gang_of(spec.trial)
    return gang.bundles() if gang is not None and len(gang.replicas) > 1 else None


def trial_resources_field(spec: ExperimentSpec, field_of: Callable[[str], str] = str) -> str:
    """Where a trial's resources are set in the file, for errors about them (``field_of``: a
    spec field's path in the file it came from)."""
    if spec.trial_template is None:
        return "trial.resources"
    from ..spec import container_trial

    return field_of(container_trial(spec.trial_template, None, []).resources_at)


def check_fits_a_worker(plan: Plan, address: str | None) -> None:
    """Bad input (SpecError) when one trial asks for more than one worker offers."""
    from ..scaling.quota import check_fits_worker, known_worker_size

    at = trial_resources_field(plan.spec, plan.field_of)
    bundles = replica_bundles(plan.spec)
    if bundles is None:
        check_fits_worker(trial_resources(plan.spec), known_worker_size(address), at)
        return
    for bundle in bundles:  # each replica must fit one worker; the gang may spread over several
        check_fits_worker({"cpu": bundle.get("CPU", 0.0), "gpu": bundle.get("GPU", 0.0), "memory": bundle.get("memory", 0.0)},
                          known_worker_size(address), at, unit="replica")


def check_fits_the_cluster(plan: Plan) -> None:
    """On a connected cluster that cannot autoscale: SpecError (nothing started) when one trial
    can never run there: a replica (or a one-process trial) larger than every node, or a gang
    larger than the whole cluster."""
    import ray

    from ..scaling.quota import amount
    from ..scaling.request import cluster_can_autoscale

    if cluster_can_autoscale():
        return
    gang = replica_bundles(plan.spec)
    one = trial_resources(plan.spec)
    bundles = gang or [{"CPU": one.get("cpu", 0.0), "GPU": one.get("gpu", 0.0)}]
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    at = trial_resources_field(plan.spec, plan.field_of)
    unit = "replica" if gang else "trial"
    for key, name in (("CPU", "cpu"), ("GPU", "gpu")):
        need = max(b.get(key, 0.0) for b in bundles)
        largest = max((float(n.get(key, 0.0)) for n in nodes), default=0.0)
        if need > largest + 1e-9:
            raise SpecError(f"{at}.{name}", f"{amount(name, need)} per {unit} is more than any node of this cluster has "
                            f"({amount(name, largest)} at most), and the cluster does not autoscale")
        total_need, total = sum(b.get(key, 0.0) for b in bundles), sum(float(n.get(key, 0.0)) for n in nodes)
        if total_need > total + 1e-9:
            raise SpecError(f"{at}.{name}", f"a trial's gang of {len(bundles)} replicas needs {amount(name, total_need)}, "
                            f"more than this cluster has ({amount(name, total)}), and the cluster does not autoscale")
