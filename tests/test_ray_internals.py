"""The Ray names the package relies on: the simulated cluster's private ones (all in
``raytune_k8s.sim._ray_internals``) and the autoscaler's status fields, and the driver's private
Tune / Train ones (all in ``raytune_k8s._tune``). A Ray release that moves one of them fails here,
by name, rather than somewhere deep in a cluster test.

And the tripwire, by path: outside ``_tune/`` and ``sim/`` no module imports a private Ray name,
no subclass of a Ray class touches a private attribute of its Ray bases (found from the code:
the classes' MROs and sources), no private attribute is reached on a Ray object, and no private
state key ``_tune/internals.py`` names is spelled."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import textwrap

import pytest

from raytune_k8s.sim import _ray_internals


@pytest.mark.parametrize("module, name", _ray_internals.PRIVATE_NAMES)
def test_private_ray_name_exists(module, name):
    assert hasattr(importlib.import_module(module), name), f"Ray no longer has {module}.{name}"


def test_gcs_client_methods_exist(ray_head):
    client = _ray_internals._gcs_client(ray_head.address)
    missing = [m for m in _ray_internals.GCS_CLIENT_METHODS if not callable(getattr(client, m, None))]
    assert not missing, f"Ray's GcsClient no longer has {missing}"


def test_job_agent_registration_is_read_from_a_live_head(ray_head):
    # The session's head was only handed out once this said yes; ask again, directly.
    assert _ray_internals.job_agent_registered(ray_head.address) is True


def test_autoscaler_status_fields_the_cluster_reads():
    from ray.autoscaler.v2 import schema
    from ray.autoscaler.v2.sdk import get_cluster_status  # noqa: F401

    fields = {f.name for f in dataclasses.fields(schema.ClusterStatus)}
    assert {"active_nodes", "idle_nodes", "pending_launches", "pending_nodes", "resource_demands"} <= fields
    assert "cluster_constraint_demand" in {f.name for f in dataclasses.fields(schema.ResourceDemandSummary)}
    assert {"bundle", "count"} <= {f.name for f in dataclasses.fields(schema.ResourceRequestByCount)}
    assert {"ray_node_type_name", "instance_id", "node_id"} <= {f.name for f in dataclasses.fields(schema.NodeInfo)}
    assert {"ray_node_type_name", "count"} <= {f.name for f in dataclasses.fields(schema.LaunchRequest)}


def test_only_the_internals_module_imports_private_ray():
    """Everything else in the simulated cluster stands on public Ray APIs."""
    from pathlib import Path

    sim = Path(_ray_internals.__file__).parent
    for path in sim.glob("*.py"):
        if path.name == "_ray_internals.py":
            continue
        text = path.read_text()
        assert "ray._" not in text and "_private" not in text, f"{path.name} uses a private Ray name"


def test_tune_internals_names_exist():
    """Every private Tune / Train name the driver uses (``raytune_k8s/_tune/internals.py``): fails
    by name when a Ray release moves one."""
    from ray.train import Checkpoint

    from raytune_k8s._tune import internals as ti

    assert isinstance(ti.object_cache_base(), type)
    assert getattr(ti.controller_module(), ti.CONTROLLER_CACHE_FACTORY) is ti.object_cache_base()
    registry = ti.trainable_registry()
    assert all(callable(getattr(registry, name)) for name in ("get", "contains", "register", "unregister"))
    assert ti.ANALYSIS_DATAFRAMES in vars(ti.experiment_analysis_class())
    result = ti.training_result(Checkpoint.from_directory("/tmp"), {"v": 1})
    assert result.metrics == {"v": 1}
    assert ti.load_tune_state(b'{"trial_data": []}') == {"trial_data": []}
    assert callable(getattr(ti.storage_module(), ti.STORAGE_UPLOAD))
    from ray import tune

    tuner = tune.Tuner(lambda config: None, run_config=tune.RunConfig(name="names", storage_path="/tmp/rtk8s-names"))
    assert ti.restored_run_config(tuner).name == "names"
    assert isinstance(ti.restored_tune_config(tuner), tune.TuneConfig)


def test_tune_internals_private_state_names_exist(tmp_path):
    """The private attributes and saved-state keys ``_tune/internals.py`` names, on real Ray
    objects: a Ray release that renames one fails here, by name."""
    import json

    import ray.cloudpickle as cloudpickle
    from ray.tune.schedulers import AsyncHyperBandScheduler, PopulationBasedTraining, TrialScheduler
    from ray.tune.search import ConcurrencyLimiter, Searcher
    from ray.tune.search.search_generator import SearchGenerator
    from ray.tune.utils.serialization import TuneFunctionEncoder

    from raytune_k8s._tune import internals as ti
    from raytune_k8s._tune.scheduler_wrapper import SchedulerWrapper

    pbt = PopulationBasedTraining(time_attr="training_iteration", hyperparam_mutations={"lr": [0.1, 0.2]})
    assert getattr(pbt, ti.PBT_TIME_ATTR) == "training_iteration"
    ti.set_pbt_time_attr(pbt, "segments")
    assert getattr(pbt, ti.PBT_TIME_ATTR) == "segments"

    searcher = Searcher(metric="v", mode="min")
    assert (getattr(searcher, ti.SEARCHER_METRIC), getattr(searcher, ti.SEARCHER_MODE)) == ("v", "min")
    ti.set_searcher_metric_mode(searcher, "w", "max")
    assert (searcher.metric, searcher.mode) == ("w", "max")

    # The wrapper's two underscored answers are TrialScheduler's class attributes.
    assert {"_metric", "_supports_buffered_results"} <= set(vars(TrialScheduler))
    wrapped = SchedulerWrapper(AsyncHyperBandScheduler(metric="v", mode="min"))
    assert wrapped._metric == wrapped.metric == "v"
    assert wrapped._supports_buffered_results == wrapped.supports_buffered_results

    class Saving(Searcher):
        def suggest(self, trial_id):
            return {}

        def save(self, checkpoint_path):
            open(checkpoint_path, "wb").close()

    SearchGenerator(ConcurrencyLimiter(Saving(metric="v", mode="min"), max_concurrent=2)).save_to_dir(str(tmp_path), "s")
    (path,) = tmp_path.glob("search_gen_state-*.json")  # the name recovery reads it by
    gen = cloudpickle.loads(path.read_bytes())
    assert ti.SEARCH_GEN_COUNTER in gen, sorted(gen)
    limiter = gen[ti.CONCURRENCY_LIMITER_STATE]
    assert {ti.LIMITER_LIVE_TRIALS, ti.LIMITER_UNFINISHED_LIVE_TRIALS} <= set(limiter), sorted(limiter)
    rewritten = ti.reconciled_search_gen_state(path.read_bytes(), 3, {"a", "b"})
    assert rewritten is not None
    gen = cloudpickle.loads(rewritten)
    assert gen[ti.SEARCH_GEN_COUNTER] == 3
    assert gen[ti.CONCURRENCY_LIMITER_STATE][ti.LIMITER_LIVE_TRIALS] == {"a", "b"}
    assert gen[ti.CONCURRENCY_LIMITER_STATE][ti.LIMITER_UNFINISHED_LIVE_TRIALS] == 2
    assert ti.reconciled_search_gen_state(rewritten, 3, {"a", "b"}) is None  # nothing to change

    assert ti.PICKLED_VALUE_MARK in json.loads(json.dumps({"f": lambda: 1}, cls=TuneFunctionEncoder))["f"]


# ---- The tripwire: private Ray names are used only under _tune/ and sim/ (found by path)

#: The package's top-level sub-packages allowed to use private Ray names.
QUARANTINE = {"_tune", "sim"}


def _is_private(name: str) -> bool:
    """``_x``: a single leading underscore (dunders and name-mangled ``__x`` are not shared)."""
    return name.startswith("_") and not name.startswith("__")


def _package_files():
    """(path relative to the package, path) of every module outside the quarantine, by path."""
    from pathlib import Path

    import raytune_k8s

    package = Path(raytune_k8s.__file__).parent
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] not in QUARANTINE:
            yield rel, path


def _package_modules():
    """Every module outside the quarantine, imported (``__main__`` runs the CLI: not imported;
    one whose optional third-party dependency is missing here: skipped)."""
    for rel, _ in _package_files():
        if rel.name == "__main__.py":
            continue
        name = ".".join(("raytune_k8s",) + rel.with_suffix("").parts).removesuffix(".__init__")
        try:
            yield rel, importlib.import_module(name)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] == "raytune_k8s":
                raise


def _ray_bases(cls: type) -> list[type]:
    return [base for base in cls.__mro__ if (getattr(base, "__module__", None) or "").split(".")[0] == "ray"]


_RAY_SELF_ATTR = re.compile(r"\b(?:self|cls)\.(_[A-Za-z0-9]\w*)")
_ray_private_cache: dict[type, frozenset[str]] = {}


def _ray_private_names(ray_class: type) -> frozenset[str]:
    """The single-underscore names a Ray class defines (its ``__dict__``) or uses on ``self`` /
    ``cls`` (its source)."""
    if ray_class not in _ray_private_cache:
        names = {name for name in vars(ray_class) if _is_private(name)}
        try:
            names |= set(_RAY_SELF_ATTR.findall(inspect.getsource(ray_class)))
        except (OSError, TypeError):
            pass
        _ray_private_cache[ray_class] = frozenset(name for name in names if _is_private(name))
    return _ray_private_cache[ray_class]


def _attributes_touched(cls: type) -> dict[str, int]:
    """Each single-underscore attribute a class's own source reads or writes on ``self``, ``cls``
    or ``super()``, or defines in its body, with the first line (in its file) that does."""
    lines, first = inspect.getsourcelines(cls)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    found: dict[str, int] = {}

    def note(name: str, node: ast.AST) -> None:
        if _is_private(name):
            found.setdefault(name, first + node.lineno - 1)

    (body,) = tree.body
    for node in ast.walk(body):
        if isinstance(node, ast.Attribute):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls") or \
                    isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                note(node.attr, node)
    for node in body.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            note(node.name, node)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    note(target.id, node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            note(node.target.id, node)
    return dict(sorted(found.items(), key=lambda item: item[1]))


def _private_ray_attributes(cls: type) -> list[str]:
    """``file:line Class.attr (Ray's Base)`` for each private attribute of its Ray bases that
    a class touches."""
    bases = _ray_bases(cls)
    found = []
    for name, line in _attributes_touched(cls).items():
        owners = [base.__qualname__ for base in bases if name in _ray_private_names(base)]
        if owners:
            found.append(f"{inspect.getsourcefile(cls)}:{line} {cls.__qualname__}.{name} (Ray's {', '.join(owners)})")
    return found


def _private_ray_object_access(source: str) -> list[str]:
    """``line: expression`` for each single-underscore attribute (or ``getattr``-family string)
    reached on a Ray object a module can be seen to hold: a name imported from ``ray`` (and
    anything reached from it), a parameter annotated with one, or what a ``_tune`` helper
    returned."""
    tree = ast.parse(source)
    ray_names: set[str] = set()
    helpers: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            ray_names |= {alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name.split(".")[0] == "ray"}
        elif isinstance(node, ast.ImportFrom):
            if not node.level and (node.module or "").split(".")[0] == "ray":
                ray_names |= {alias.asname or alias.name for alias in node.names}
            elif "_tune" in (node.module or "").split("."):
                helpers |= {alias.asname or alias.name for alias in node.names}
    held = set(ray_names)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            annotation = ast.unparse(node.annotation)
            if any(re.search(rf"\b{re.escape(name)}\b", annotation) for name in ray_names):
                held.add(node.arg)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Name) and node.value.func.id in helpers:
            held |= {target.id for target in node.targets if isinstance(target, ast.Name)}

    def rooted_in_ray(node: ast.AST) -> bool:
        while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name) and node.func.id in helpers:
                    return True
                node = node.func
            else:
                node = node.value
        return isinstance(node, ast.Name) and node.id in held

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and rooted_in_ray(node.value):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2 and \
                isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) and \
                _is_private(node.args[1].value) and rooted_in_ray(node.args[0]):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_quarantine_imports_private_ray():
    """No module outside ``_tune/`` and ``sim/`` (each has its own) imports a private Ray module
    or name."""
    for rel, path in _package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "ray":
                private = [p for p in node.module.split(".") if p.startswith("_")] + \
                          [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{rel} imports {private} from {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not any(p.startswith("_") for p in alias.name.split(".")), f"{rel} imports {alias.name}"


def test_no_subclass_outside_the_quarantine_touches_its_ray_bases_private_attributes():
    """Every class of the package outside ``_tune/`` and ``sim/`` that subclasses a Ray class
    touches (on ``self``, ``cls``, ``super()``, or by defining it) no single-underscore attribute
    of the Ray part of its MRO; one that needs such a hook belongs in ``_tune/``."""
    scanned, found = [], []
    for _, module in _package_modules():
        for cls in vars(module).values():
            if inspect.isclass(cls) and cls.__module__ == module.__name__ and _ray_bases(cls):
                scanned.append(cls.__qualname__)
                found += _private_ray_attributes(cls)
    assert len(scanned) >= 10, scanned  # the searchers, schedulers and callbacks were seen
    assert not found, "private Ray attributes outside _tune/ (move them behind _tune/internals.py):\n" + "\n".join(found)


def test_no_module_outside_the_quarantine_reaches_a_private_attribute_of_a_ray_object():
    found = [f"{rel}:{hit}" for rel, path in _package_files() for hit in _private_ray_object_access(path.read_text())]
    assert not found, "private attributes of Ray objects outside _tune/:\n" + "\n".join(found)


def _keys_used(tree: ast.AST) -> list[ast.Constant]:
    """String constants used as keys or attribute names: ``x["k"]``, ``x.get("k")`` (``pop``,
    ``setdefault``), ``"k" in x``, ``getattr(x, "k")`` (``setattr``, ``hasattr``, ``delattr``)."""
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            used.append(node.slice)
        elif isinstance(node, ast.Call) and node.args:
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop", "setdefault"):
                used.append(node.args[0])
            elif isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "hasattr", "delattr") \
                    and len(node.args) >= 2:
                used.append(node.args[1])
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            used.append(node.left)
    return [node for node in used if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_module_outside_the_quarantine_spells_a_private_state_key():
    """The private attribute names and saved-state keys ``_tune/internals.py`` holds are used
    as keys only there (elsewhere, through its constants and helpers)."""
    from raytune_k8s._tune import internals

    keys = {value for name, value in vars(internals).items() if name.isupper() and isinstance(value, str)}
    found = [f"{rel}:{node.lineno}: {node.value!r}" for rel, path in _package_files()
             for node in _keys_used(ast.parse(path.read_text())) if node.value in keys]
    assert not found, "spell these through raytune_k8s._tune.internals:\n" + "\n".join(found)


_PEEKING = """
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher


class Peeking(TrialScheduler):
    def on_trial_result(self, tune_controller, trial, result):
        self._mine = 1
        return self.CONTINUE if self._metric in result else self.STOP


class Clean(Searcher):
    def suggest(self, trial_id):
        self._own = trial_id
        return {"metric": self.metric}
"""


def test_the_tripwire_catches_a_subclass_reading_a_private_ray_attribute(tmp_path, monkeypatch):
    """The scanners have teeth: a subclass reading a Ray scheduler's ``self._metric`` is flagged
    (class, attribute, file, line), its own ``self._mine`` is not, nor a clean subclass; a
    private attribute reached on a Ray name, a ``_tune`` helper's result or a parameter
    annotated with a Ray class is flagged, one on an unknown object is not."""
    import importlib.util
    import sys

    (tmp_path / "peeking.py").write_text(_PEEKING)
    spec = importlib.util.spec_from_file_location("peeking", tmp_path / "peeking.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "peeking", module)  # where inspect finds its source
    spec.loader.exec_module(module)
    assert _private_ray_attributes(module.Peeking) == [
        f"{tmp_path / 'peeking.py'}:9 Peeking._metric (Ray's TrialScheduler)"]
    assert _private_ray_attributes(module.Clean) == []

    found = _private_ray_object_access(
        "import ray\n"
        "from ray.tune.search import Searcher\n"
        "from .._tune.internals import restored_run_config\n"
        "a = ray._private.worker\n"
        "def f(s: Searcher, t):\n"
        "    s._metric = restored_run_config(t)._x\n"
        "    c = restored_run_config(t)\n"
        "    return c._y, getattr(s, '_mode'), t._fine, s.metric\n")
    assert sorted(found) == sorted(["4: ray._private", "6: s._metric", "6: restored_run_config(t)._x", "8: c._y",
                                    "8: getattr(s, '_mode')"]), found

    tree = ast.parse("gen['counter'] += 1\nlimiter.get('live_trials')\nok = '_type' in value\nprint('counter')\n")
    assert [(node.lineno, node.value) for node in _keys_used(tree)] == [(1, "counter"), (2, "live_trials"), (3, "_type")]


def test_the_tune_state_recovery_rewrites_has_the_fields_it_expects():
    """recovery rewrites the concurrency limit's saved state (``live_trials``) and prunes a
    trial's tracked checkpoints (``_checkpoint_results``): both are Tune internals."""
    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune.search import ConcurrencyLimiter, Searcher

    from raytune_k8s._tune import internals as ti

    state = ConcurrencyLimiter(Searcher(metric="v", mode="min"), max_concurrent=2).get_state()
    assert {ti.LIMITER_LIVE_TRIALS, ti.LIMITER_UNFINISHED_LIVE_TRIALS} <= set(state), sorted(state)
    manager = _CheckpointManager(CheckpointConfig())
    assert isinstance(ti.tracked_checkpoints(manager), list)
    ti.set_tracked_checkpoints(manager, [])
    assert manager._checkpoint_results == []


def test_a_new_head_on_a_dead_heads_port_gets_a_new_gcs_client(monkeypatch):
    """A kept client carries the old head's cluster id; the new GCS refuses it (WrongClusterID):
    launching a head forgets any client kept for its address."""
    from raytune_k8s.sim import cluster

    monkeypatch.setitem(_ray_internals._clients, "127.0.0.1:1", object())
    _ray_internals.forget_gcs_client("127.0.0.1:1")
    assert "127.0.0.1:1" not in _ray_internals._clients
    head = cluster.LocalRayHead.__new__(cluster.LocalRayHead)
    head.port = 1
    monkeypatch.setitem(_ray_internals._clients, head.address, object())
    monkeypatch.setattr(cluster, "use_token_auth", lambda: (_ for _ in ()).throw(RuntimeError("stop here")))
    with pytest.raises(RuntimeError, match="stop here"):
        head.launch()
    assert head.address not in _ray_internals._clients
