"""Offline checks of cluster/: KubeRay manifests, tenant overlays, platform layer, operator
values, image recipe.

Nothing here needs a Kubernetes cluster or Ray:
* every kustomization is rendered by the real `kubectl kustomize` (kubectl is required);
* built-in kinds are validated against the Kubernetes OpenAPI schemas (kubernetes-validate,
  strict: unknown fields are errors);
* RayCluster and RayJob against KubeRay's CRD schemas in ../shared/crds (or
  $RAYTUNE_K8S_CRDS_DIR), made strict the same way, and against our own offline copy of the
  rules the KubeRay 1.7.0 operator checks before it acts (tests/kuberay_rules.py);
* then the design rules: quota arithmetic, security defaults, least-privilege RBAC, network
  policy, the RayJob's resume-on-resubmission wiring, images per overlay, the optional
  components (GPU workers, GCS fault tolerance) rendered into a tenant.
The admission policies' CEL rules are evaluated in tests/test_cluster_admission.py.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

try:  # tests/ may or may not be a package
    from . import cluster_schema as cs
    from . import kuberay_rules as kr
except ImportError:  # not a package: the helper modules sit beside this file
    if str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cluster_schema as cs
    import kuberay_rules as kr

CLUSTER = cs.CLUSTER_DIR
BASE = CLUSTER / "base"
PLATFORM = CLUSTER / "platform"
TENANTS_DIR = CLUSTER / "tenants"
COMPONENTS_DIR = CLUSTER / "components"
OPERATOR_VALUES = CLUSTER / "operator" / "values.yaml"

# Kubernetes version whose OpenAPI schemas the built-in kinds are checked against (or the
# newest one the installed kubernetes-validate ships, if older).
K8S_VERSION = "1.33"

# The Katib paper's two tenants: trial vCPU quota, trials at once here, trials at once in Katib
# (which fit fewer because of its per-trial sidecar).
TENANTS = {
    "user1": {"trial_vcpu": 18, "trials": 9, "katib_trials": 8},
    "user2": {"trial_vcpu": 6, "trials": 3, "katib_trials": 2},
}
WORKER_VCPU = 2
TRIAL_CLASS, HEAD_CLASS, GPU_CLASS = "raytune-trial", "raytune-head", "raytune-gpu-trial"
RAY_KINDS = frozenset(cs.CRD_FILES)
CLUSTER_SCOPED_KINDS = frozenset({"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding",
                                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                                  "CustomResourceDefinition", "StorageClass", "PersistentVolume"})
ENTRYPOINT = ("raytune-k8s run examples/mnist-mxnet-random.yaml "
              "--storage-path /mnt/experiments --resume-if-exists")
EXPERIMENTS_MOUNT = "/mnt/experiments"
OPERATOR_NAMESPACE = "ray-system"
IMAGE_PLACEHOLDER = "raytune-k8s"
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
METADATA_IP = ipaddress.ip_address("169.254.169.254")
COMPONENTS = ("gpu-workers", "gcs-fault-tolerance")

SOURCES = ["base", *TENANTS]


# --------------------------------------------------------------------------- helpers


def k8s_version() -> str:
    latest = kubernetes_validate.latest_version()
    return min(K8S_VERSION, latest, key=lambda v: tuple(int(x) for x in v.split(".")[:2]))


def ident(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[ident(d) for d in found]}"
    return found[0]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def q(value: Any) -> Decimal:
    return cs.parse_quantity(value)


def ray_pods(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """Pod specs of a RayCluster: the head's, then each worker group's."""
    spec = cluster["spec"]
    workers = [group["template"]["spec"] for group in spec["workerGroupSpecs"]]
    return [spec["headGroupSpec"]["template"]["spec"], *workers]


def head_container(cluster: dict[str, Any]) -> dict[str, Any]:
    return cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def pod_total(pod_containers: list[dict[str, Any]], field: str, resource: str) -> Decimal:
    """Sum of one resource over a pod's (non-init) containers, for requests or limits."""
    return sum((q(c["resources"][field].get(resource, 0)) for c in pod_containers), Decimal(0))


def quota_for_class(docs: list[dict[str, Any]], priority_class: str) -> dict[str, Any]:
    """The ResourceQuota scoped to exactly one PriorityClass with operator In."""
    found = []
    for quota in of_kind(docs, "ResourceQuota"):
        for expr in quota["spec"].get("scopeSelector", {}).get("matchExpressions", []):
            if expr["scopeName"] == "PriorityClass" and expr["operator"] == "In" \
                    and expr["values"] == [priority_class]:
                found.append(quota)
    assert len(found) == 1, f"need exactly one quota scoped to PriorityClass {priority_class}"
    return found[0]


def markdown_table(text: str, header_start: str) -> list[list[str]]:
    """Rows (cells stripped) of the first markdown table whose header starts with header_start."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"no table starting with {header_start!r}")


def helm_values() -> dict[str, Any]:
    return yaml.safe_load(OPERATOR_VALUES.read_text())


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {source: cs.render(BASE if source == "base" else TENANTS_DIR / source) for source in SOURCES}


@pytest.fixture(scope="module")
def platform() -> list[dict[str, Any]]:
    return cs.render(PLATFORM)


@pytest.fixture(scope="module")
def with_components(tmp_path_factory) -> dict[str, list[dict[str, Any]]]:
    """user2 with each optional component added the way the components' comments say: a copy
    of cluster/ whose tenants/user2/kustomization.yaml lists it under `components:`."""
    out = {}
    for component in COMPONENTS:
        root = tmp_path_factory.mktemp(component) / "cluster"
        shutil.copytree(CLUSTER, root)
        kust = root / "tenants" / "user2" / "kustomization.yaml"
        kust.write_text(kust.read_text() + f"components:\n  - ../../components/{component}\n")
        out[component] = cs.render(kust.parent)
    return out


@pytest.fixture(scope="module")
def crds() -> Path:
    """The KubeRay CRDs' folder: skips where the repository stands alone, fails in CI."""
    return cs.require_crds()


def all_renders(rendered, platform, with_components) -> dict[str, list[dict[str, Any]]]:
    return {**rendered, "platform": platform, **{f"user2+{c}": docs for c, docs in with_components.items()}}


def distinct_objects(renders: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """(source, object) for each distinct object of the renders (the components' renders repeat
    most of user2's objects unchanged: each is validated once)."""
    seen, out = set(), []
    for source, docs in renders.items():
        for doc in docs:
            key = yaml.safe_dump(doc, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append((source, doc))
    return out


# --------------------------------------------------------------------------- schema validation


def test_every_manifest_under_cluster_is_checked():
    """No YAML file escapes validation: each is a kustomization (or component), a patch or
    resource that one references, or the operator's Helm values."""
    referenced: set[Path] = set()
    for kust_file in CLUSTER.rglob("kustomization.yaml"):
        kust = cs.load_docs(kust_file)[0]
        referenced.add(kust_file)
        entries = kust.get("resources", []) + kust.get("components", [])
        entries += [p["path"] for p in kust.get("patches", []) if "path" in p]
        for entry in entries:
            path = (kust_file.parent / entry).resolve()
            assert path.exists(), f"{kust_file}: {entry} does not exist"
            referenced.add(path / "kustomization.yaml" if path.is_dir() else path)
    orphans = [p for p in CLUSTER.rglob("*.y*ml") if p.resolve() not in referenced | {OPERATOR_VALUES}]
    assert not orphans, f"manifests no kustomization includes (so no test checks): {orphans}"
    components = {p.parent.name for p in COMPONENTS_DIR.glob("*/kustomization.yaml")}
    assert components == set(COMPONENTS), "every component is rendered into a tenant by a test"


def test_builtin_kinds_match_kubernetes_openapi(rendered, platform, with_components):
    version = k8s_version()
    failures, checked = [], 0
    for source, doc in distinct_objects(all_renders(rendered, platform, with_components)):
        if doc["kind"] in RAY_KINDS:
            continue
        checked += 1
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{source}: {ident(doc)}: {exc}")
    assert checked >= 40
    assert not failures, f"Kubernetes {version} schema violations:\n" + "\n".join(failures)


def test_ray_resources_match_kuberay_crds(rendered, platform, with_components, crds):
    failures = []
    renders = all_renders(rendered, platform, with_components)
    for source, docs in renders.items():
        assert {d["kind"] for d in docs} & RAY_KINDS == (set() if source == "platform" else RAY_KINDS), source
    for source, doc in distinct_objects(renders):
        if doc["kind"] in RAY_KINDS:
            failures += [f"{source}: {ident(doc)}: {err}" for err in cs.crd_errors(doc)]
            # The CRD leaves metadata to the API server: check it as ObjectMeta (of any built-in kind).
            as_configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
            try:
                kubernetes_validate.validate(as_configmap, k8s_version(), strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{source}: {ident(doc)} metadata: {exc}")
    assert not failures, f"KubeRay CRD ({crds}) violations:\n" + "\n".join(failures)


BAD_EDITS = [
    # (kind, JSON pointer, value): our manifest with this edit must fail the (strict) CRD check,
    # or the CRD test above could pass without checking anything.
    ("RayCluster", "/spec/headGroupSpec/rayStartParam", {"num-cpus": "0"}),          # typo
    ("RayCluster", "/spec/autoscalerOptions/volumeMount", []),                      # typo
    ("RayCluster", "/spec/upgradeStrategy/type", "RollingUpdate"),                  # not in enum
    ("RayCluster", "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/cpu", "two"),
    ("RayCluster", "/spec/workerGroupSpecs/0/maxReplicas", "9"),                    # not an integer
    ("RayJob", "/spec/submisionMode", "HTTPMode"),                                  # typo
    ("RayJob", "/spec/activeDeadlineSeconds", "12h"),                               # not an integer
]


@pytest.mark.parametrize("kind,path,value", BAD_EDITS, ids=[f"{k}{p}" for k, p, _ in BAD_EDITS])
def test_crd_check_is_strict_on_our_manifests(kind, path, value, rendered, crds):
    doc = one(rendered["user2"], kind)
    assert cs.crd_errors(doc) == []
    assert cs.crd_errors(cs.edited(doc, [{"op": "add", "path": path, "value": value}])), \
        f"{kind} with {path}={value!r} was accepted"


def test_crd_int_or_string_accepts_both(rendered, crds):
    """Quantities are x-kubernetes-int-or-string: 2 and "2" are both valid."""
    doc = cs.edited(one(rendered["user2"], "RayCluster"), [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/cpu", "value": 2},
        {"op": "replace", "path": "/spec/headGroupSpec/template/spec/containers/0/resources/requests/memory", "value": "4096Mi"},
    ])
    assert cs.crd_errors(doc) == []


# --------------------------------------------------------------------------- KubeRay's own rules


def test_kuberay_operator_accepts_every_rendered_object(rendered, with_components):
    """What the CRD schema does not hold: the rules the 1.7.0 operator checks before it acts
    (a RayJob breaking one ends in ValidationFailed), with the feature gates our Helm values give."""
    gates = kr.feature_gates(helm_values())
    failures = []
    for source, docs in {**rendered, "user2+gpu-workers": with_components["gpu-workers"]}.items():
        for doc in docs:
            if doc["kind"] == "RayCluster":
                failures += [f"{source}: {ident(doc)}: {e}" for e in kr.raycluster_errors(doc, gates)]
            elif doc["kind"] == "RayJob":
                failures += [f"{source}: {ident(doc)}: {e}" for e in kr.rayjob_errors(doc, gates)]
        if source != "base":
            failures += [f"{source}: {e}" for e in kr.cross_object_errors(docs)]
    assert not failures, "\n".join(failures)


def test_gcs_fault_tolerance_component_needs_the_feature_gate(with_components):
    """The embedded-storage backend is behind an alpha gate the chart leaves off: with our values
    the operator refuses that RayCluster; with the gate on (as the component says), it accepts it."""
    cluster = one(with_components["gcs-fault-tolerance"], "RayCluster")
    assert cluster["spec"]["gcsFaultToleranceOptions"]["backend"] == "rocksdb"
    assert any("GCSFaultToleranceEmbeddedStorage" in e
               for e in kr.raycluster_errors(cluster, kr.feature_gates(helm_values())))
    gates = {**kr.feature_gates(helm_values()), "GCSFaultToleranceEmbeddedStorage": True}
    assert kr.raycluster_errors(cluster, gates) == []
    assert "GCSFaultToleranceEmbeddedStorage" in OPERATOR_VALUES.read_text()
    assert "GCSFaultToleranceEmbeddedStorage" in (COMPONENTS_DIR / "gcs-fault-tolerance" / "kustomization.yaml").read_text()


RULE_BREAKS = [
    # (kind, RFC 6902 ops on our rendered user2 object, what the operator says): each must be
    # caught by our checks, or the test above proves nothing.
    ("RayJob", [{"op": "add", "path": "/spec/backoffLimit", "value": 2}], "incompatible with ClusterSelector"),
    ("RayJob", [{"op": "replace", "path": "/spec/submissionMode", "value": "SidecarMode"}], "SidecarMode"),
    ("RayJob", [{"op": "replace", "path": "/spec/clusterSelector", "value": {"ray.io/cluster": ""}}], "name the cluster"),
    ("RayJob", [{"op": "remove", "path": "/spec/clusterSelector"}], "rayClusterSpec or clusterSelector"),
    ("RayJob", [{"op": "add", "path": "/spec/suspend", "value": True}], "suspend"),
    ("RayJob", [{"op": "add", "path": "/spec/ttlSecondsAfterFinished", "value": 60}], "shutdownAfterJobFinishes"),
    ("RayJob", [{"op": "add", "path": "/spec/deletionStrategy", "value": {"deletionRules": [
        {"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED"}}]}}], "not supported with clusterSelector"),
    ("RayJob", [{"op": "replace", "path": "/spec/activeDeadlineSeconds", "value": 0}], "activeDeadlineSeconds"),
    ("RayJob", [{"op": "add", "path": "/spec/runtimeEnvYAML", "value": "env_vars: [unclosed"}], "runtimeEnvYAML"),
    ("RayJob", [{"op": "replace", "path": "/metadata/name", "value": "x" * 48}], "no more than 47"),
    ("RayCluster", [{"op": "replace", "path": "/spec/rayVersion", "value": "2.51.0"}], "2.52.0"),
    ("RayCluster", [{"op": "add", "path": "/spec/headGroupSpec/resources", "value": {"CPU": "0"}}], "rayStartParams"),
    ("RayCluster", [{"op": "add", "path": "/spec/headGroupSpec/template/spec/restartPolicy", "value": "Always"}], "restartPolicy"),
    ("RayCluster", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/minReplicas", "value": 10}], "minReplicas"),
    ("RayCluster", [{"op": "add", "path": "/spec/headGroupSpec/template/spec/containers/0/env/-",
                     "value": {"name": "RAY_enable_autoscaler_v2", "value": "true"}}], "autoscalerOptions.version"),
    ("RayCluster", [{"op": "add", "path": "/spec/networkPolicy", "value": {}}], "RayClusterNetworkPolicy"),
    ("RayCluster", [{"op": "add", "path": "/spec/gcsFaultToleranceOptions", "value": {"storage": {"size": "1Gi"}}}], "rocksdb"),
]


@pytest.mark.parametrize("kind,ops,message", RULE_BREAKS, ids=[f"{k}-{m}" for k, _, m in RULE_BREAKS])
def test_kuberay_rules_catch_what_the_operator_rejects(kind, ops, message, rendered):
    doc = one(rendered["user2"], kind)
    check = kr.raycluster_errors if kind == "RayCluster" else kr.rayjob_errors
    assert check(doc) == []
    errors = check(cs.edited(doc, ops))
    assert any(message in e for e in errors), f"{ops}: {errors}"


def test_a_rayjob_selecting_a_missing_cluster_is_caught(rendered):
    docs = [cs.edited(d, [{"op": "replace", "path": "/spec/clusterSelector/ray.io~1cluster", "value": "other"}])
            if d["kind"] == "RayJob" else d for d in rendered["user2"]]
    assert kr.cross_object_errors(rendered["user2"]) == []
    assert kr.cross_object_errors(docs) == ["RayJob/mnist-mxnet-random: no RayCluster other in its namespace"]


# --------------------------------------------------------------------------- layers and overlays


def test_cluster_scoped_objects_live_only_in_the_platform_layer(rendered, platform, with_components):
    """Deleting a tenant (`kubectl delete -k cluster/tenants/<t>`) must not delete what every
    tenant relies on; the tenant namespace itself is the tenant's."""
    for source, docs in {**rendered, **with_components}.items():
        scoped = [ident(d) for d in docs if d["kind"] in CLUSTER_SCOPED_KINDS and d["kind"] != "Namespace"]
        assert not scoped, f"{source}: cluster-scoped objects in a tenant layer: {scoped}"
    assert all(d["kind"] in CLUSTER_SCOPED_KINDS for d in platform)
    assert {d["metadata"]["name"] for d in of_kind(platform, "PriorityClass")} == {TRIAL_CLASS, HEAD_CLASS, GPU_CLASS}
    for pc in of_kind(platform, "PriorityClass"):
        assert pc["preemptionPolicy"] == "Never" and pc["globalDefault"] is False


@pytest.mark.parametrize("tenant", TENANTS)
def test_overlay_puts_everything_in_the_tenant_namespace(tenant, rendered):
    docs = rendered[tenant]
    assert one(docs, "Namespace")["metadata"]["name"] == tenant
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == tenant, ident(doc)
    for binding in of_kind(docs, "RoleBinding"):
        for subject in binding["subjects"]:
            if subject["kind"] == "ServiceAccount":
                assert subject["namespace"] == tenant, ident(binding)
            if subject["kind"] == "User":
                assert subject["name"] == tenant, ident(binding)


def test_image_is_set_per_overlay(rendered, with_components):
    """The base names a placeholder; every tenant's pods get a registry path from its overlay's
    kustomize `images:`, pinned by tag or digest (the autoscaler sidecar uses the head's image)."""
    base_images = {c["image"] for _w, c, _p in cs.containers(one(rendered["base"], "RayCluster")) if "image" in c}
    assert base_images == {IMAGE_PLACEHOLDER}
    for source, docs in {**{t: rendered[t] for t in TENANTS}, **with_components}.items():
        cluster = one(docs, "RayCluster")
        assert "image" not in cluster["spec"]["autoscalerOptions"], "the sidecar follows the head's image"
        for where, container, _pod in cs.containers(cluster):
            if where.endswith("autoscalerOptions"):
                continue
            image = container["image"]
            registry, _, rest = image.partition("/")
            assert rest and ("." in registry or ":" in registry), f"{source} {where}: {image} has no registry host"
            assert re.search(r"@sha256:[0-9a-f]{64}$", image) or re.search(r":[\w][\w.-]*$", rest), \
                f"{source} {where}: {image} is neither tag- nor digest-pinned"
            assert not image.endswith(":latest"), f"{source} {where}: {image}"
    # Every placeholder the base and the components use is mapped by every tenant overlay.
    placeholders = {IMAGE_PLACEHOLDER} | set(re.findall(r"image: (\S+)", "".join(
        p.read_text() for p in COMPONENTS_DIR.rglob("*.yaml"))))
    assert placeholders == {IMAGE_PLACEHOLDER, f"{IMAGE_PLACEHOLDER}-gpu"}
    for tenant in TENANTS:
        kust = cs.load_docs(TENANTS_DIR / tenant / "kustomization.yaml")[0]
        assert {i["name"] for i in kust["images"]} == placeholders, tenant


# --------------------------------------------------------------------------- quota arithmetic


@pytest.mark.parametrize("source", SOURCES)
def test_requests_equal_limits_on_every_container(source, rendered):
    for doc in rendered[source]:
        for where, container, _pod in cs.containers(doc):
            res = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = res.get("requests", {}).get(resource)
                limit = res.get("limits", {}).get(resource)
                assert request is not None and limit is not None, f"{where}: {resource} not set"
                assert q(request) == q(limit), f"{where}: {resource} request {request} != limit {limit}"


@pytest.mark.parametrize("tenant", TENANTS)
def test_quota_arithmetic(tenant, rendered):
    """Head (+ autoscaler sidecar) fits the control quota, maxReplicas workers fit the trial quota
    exactly, for cpu and memory, requests and limits; pods over a quota are rejected by the API
    server without the Ray autoscaler ever knowing (kuberay issue 4846), so nothing may rely on it."""
    docs, expected = rendered[tenant], TENANTS[tenant]
    cluster = one(docs, "RayCluster")["spec"]
    head_pod = cluster["headGroupSpec"]["template"]["spec"]
    (group,) = cluster["workerGroupSpecs"]
    worker_pod = group["template"]["spec"]

    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "trials must not land on the head"
    assert head_pod["priorityClassName"] == HEAD_CLASS
    assert worker_pod["priorityClassName"] == TRIAL_CLASS

    head_containers = head_pod["containers"] + [cluster["autoscalerOptions"]]
    trials = quota_for_class(docs, TRIAL_CLASS)["spec"]["hard"]
    control = quota_for_class(docs, HEAD_CLASS)["spec"]["hard"]
    assert q(trials["requests.cpu"]) == expected["trial_vcpu"]

    for field in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            key = f"{field}.{resource}"
            head = pod_total(head_containers, field, resource)
            assert head <= q(control[key]), f"head pod {key} {head} > control quota {control[key]}"
            workers = group["maxReplicas"] * pod_total(worker_pod["containers"], field, resource)
            assert workers <= q(trials[key]), f"maxReplicas workers' {key} {workers} > {trials[key]}"
    assert int(control["pods"]) >= 1 and int(trials["pods"]) >= group["maxReplicas"]

    worker_cpu = pod_total(worker_pod["containers"], "limits", "cpu")
    worker_mem = pod_total(worker_pod["containers"], "limits", "memory")
    assert worker_cpu == WORKER_VCPU
    fit = min(math.floor(q(trials["limits.cpu"]) / worker_cpu),
              math.floor(q(trials["limits.memory"]) / worker_mem), int(trials["pods"]))
    assert group["minReplicas"] == 0
    assert group["maxReplicas"] == fit == expected["trials"], "maxReplicas uses exactly the trial quota"
    assert expected["trials"] > expected["katib_trials"]


@pytest.mark.parametrize("tenant", TENANTS)
def test_head_is_handed_the_trial_quota(tenant, rendered):
    """raytune_k8s on the head gets the trial quota from env the overlay fills in (ray-head has
    no API token to read it): RAYTUNE_K8S_QUOTA_CPU / _MEMORY equal raytune-trials' limits."""
    docs = rendered[tenant]
    env = env_of(head_container(one(docs, "RayCluster")))
    trials = quota_for_class(docs, TRIAL_CLASS)["spec"]["hard"]
    assert q(env["RAYTUNE_K8S_QUOTA_CPU"]["value"]) == q(trials["limits.cpu"]) == q(trials["requests.cpu"])
    assert q(env["RAYTUNE_K8S_QUOTA_MEMORY"]["value"]) == q(trials["limits.memory"]) == q(trials["requests.memory"])
    assert env["RAYTUNE_K8S_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_head_is_told_the_largest_worker(rendered, with_components):
    """RAYTUNE_K8S_WORKER_CPU / _MEMORY (/ _GPU) on the head equal the largest worker group's
    container limits, in every tenant and with the GPU component: raytune_k8s refuses a trial
    that asks for more (it would wait for ever), and must not refuse one that fits."""
    renders = {**rendered, **{f"user2+{c}": docs for c, docs in with_components.items()}}
    for source, docs in renders.items():
        cluster = one(docs, "RayCluster")
        env = env_of(head_container(cluster))
        pods = [g["template"]["spec"]["containers"] for g in cluster["spec"]["workerGroupSpecs"]]
        for variable, resource in (("RAYTUNE_K8S_WORKER_CPU", "cpu"), ("RAYTUNE_K8S_WORKER_MEMORY", "memory"),
                                   ("RAYTUNE_K8S_WORKER_GPU", "nvidia.com/gpu")):
            largest = max(pod_total(containers, "limits", resource) for containers in pods)
            if largest == 0:
                assert variable not in env, (source, variable)
            else:
                assert q(env[variable]["value"]) == largest, (source, variable)


def _pods_escape_checks(docs: list[dict[str, Any]], scoped_classes: list[str]) -> None:
    quotas = [quota["spec"] for quota in of_kind(docs, "ResourceQuota")]
    everything_else = {"scopeName": "PriorityClass", "operator": "NotIn", "values": scoped_classes}
    catch_all = [quota for quota in quotas
                 if everything_else in quota.get("scopeSelector", {}).get("matchExpressions", [])]
    assert len(catch_all) == 1 and {"requests.cpu", "requests.memory"} <= set(catch_all[0]["hard"])
    (limits,) = one(docs, "LimitRange")["spec"]["limits"]
    assert limits["type"] == "Container"
    assert {k: q(v) for k, v in limits["maxLimitRequestRatio"].items()} == {"cpu": 1, "memory": 1}
    assert q(limits["default"]["cpu"]) == q(limits["defaultRequest"]["cpu"])
    for doc in docs:
        for where, container, _pod in cs.containers(doc):
            for resource, maximum in limits["max"].items():
                limit = container["resources"]["limits"][resource]
                assert q(limit) <= q(maximum), f"{where}: {resource} {limit} over the LimitRange max"


@pytest.mark.parametrize("tenant", TENANTS)
def test_no_pod_escapes_the_tenant_quota(tenant, rendered):
    """Pods of any other PriorityClass (or none) fall into a catch-all quota, and the LimitRange
    admits every Ray container while keeping limits == requests."""
    docs = rendered[tenant]
    _pods_escape_checks(docs, [TRIAL_CLASS, HEAD_CLASS])
    unscoped = [quota["spec"]["hard"] for quota in of_kind(docs, "ResourceQuota") if "scopeSelector" not in quota["spec"]]
    assert any(hard.get("count/rayclusters.ray.io") == "1" for hard in unscoped)
    assert any(0 < int(hard.get("count/rayjobs.ray.io", 0)) <= 100 for hard in unscoped), \
        "finished RayJobs are never deleted by the operator in clusterSelector mode: bound them"


def test_gpu_component_has_its_own_quota(with_components):
    """GPU workers: own PriorityClass and quota (maxReplicas x worker fits it, GPUs included),
    left out of the catch-all quota, admitted by the LimitRange; raytune_k8s is told the GPU quota."""
    docs = with_components["gpu-workers"]
    cluster = one(docs, "RayCluster")
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu2", "gpu1"}
    gpu = groups["gpu1"]
    pod = gpu["template"]["spec"]
    assert pod["priorityClassName"] == GPU_CLASS and pod["automountServiceAccountToken"] is False
    hard = quota_for_class(docs, GPU_CLASS)["spec"]["hard"]
    for key, resource in (("requests.cpu", "cpu"), ("limits.cpu", "cpu"), ("requests.memory", "memory"),
                          ("limits.memory", "memory"), ("requests.nvidia.com/gpu", "nvidia.com/gpu")):
        field = key.split(".")[0]
        assert gpu["maxReplicas"] * pod_total(pod["containers"], field, resource) <= q(hard[key]), key
    assert pod_total(pod["containers"], "limits", "nvidia.com/gpu") == 1
    assert int(hard["pods"]) >= gpu["maxReplicas"]
    _pods_escape_checks(docs, [TRIAL_CLASS, HEAD_CLASS, GPU_CLASS])
    assert q(env_of(head_container(cluster))["RAYTUNE_K8S_QUOTA_GPU"]["value"]) == q(hard["requests.nvidia.com/gpu"])


def test_gcs_fault_tolerance_fits_the_objects_quota(with_components):
    """The operator-made GCS volume (raytune-gcs-pvc) counts against the tenant's quota too."""
    docs = with_components["gcs-fault-tolerance"]
    storage = one(docs, "RayCluster")["spec"]["gcsFaultToleranceOptions"]["storage"]
    objects = one(docs, "ResourceQuota", "raytune-objects")["spec"]["hard"]
    claims = [p["spec"]["resources"]["requests"]["storage"] for p in of_kind(docs, "PersistentVolumeClaim")]
    claims.append(storage["size"])
    assert int(objects["persistentvolumeclaims"]) >= len(claims) == 2
    assert sum(map(q, claims)) <= q(objects["requests.storage"])


def test_readme_quota_table_matches_the_manifests(rendered):
    rows = {row[0]: row for row in markdown_table((CLUSTER / "README.md").read_text(), "| tenant")}
    for tenant, expected in TENANTS.items():
        docs = rendered[tenant]
        cluster = one(docs, "RayCluster")["spec"]
        trials = quota_for_class(docs, TRIAL_CLASS)["spec"]["hard"]
        row = rows[tenant]
        assert q(row[1].split()[0]) == q(trials["requests.cpu"]), row
        assert str(cluster["workerGroupSpecs"][0]["maxReplicas"]) == row[5], row
        assert str(expected["trials"]) == row[6] and str(expected["katib_trials"]) == row[7], row


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize("source", SOURCES)
def test_security_defaults(source, rendered):
    docs = rendered[source]
    for doc in docs:
        for where, container, pod in cs.containers(doc):
            sc, pod_sc = container.get("securityContext", {}), pod.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser")) == 1000, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")

    cluster = one(docs, "RayCluster")["spec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["authOptions"].get("secretName"), "the token lives in a Secret the admin controls"
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    assert not cluster["headGroupSpec"].get("enableIngress")
    for service in of_kind(docs, "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", ident(service)
    assert not of_kind(docs, "Secret"), "no secret material in git"
    for account in of_kind(docs, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False, ident(account)
    if source != "base":
        labels = one(docs, "Namespace")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["raytune-k8s/tenant"] == source, "the admission policies key on this label"


@pytest.mark.parametrize("source", SOURCES)
def test_head_token_only_in_the_autoscaler_sidecar(source, rendered):
    """Tenants' code runs in ray-head (RayJob entrypoints, `ray job submit`), so no pod mounts the
    service-account token automatically; the head pod projects one, and only the autoscaler
    sidecar mounts it, where the Ray autoscaler's Kubernetes client looks for it."""
    cluster = one(rendered[source], "RayCluster")
    head_pod, *worker_pods = ray_pods(cluster)
    for pod in (head_pod, *worker_pods):
        assert pod["automountServiceAccountToken"] is False
        assert not pod.get("shareProcessNamespace"), "ray-head could read the sidecar's token via /proc"
    token_volumes = {v["name"] for v in head_pod["volumes"]
                     if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))}
    assert len(token_volumes) == 1
    (projected,) = [v["projected"]["sources"] for v in head_pod["volumes"] if v["name"] in token_volumes]
    paths = {s["serviceAccountToken"]["path"] for s in projected if "serviceAccountToken" in s}
    paths |= {i["path"] for s in projected if "configMap" in s for i in s["configMap"]["items"]}
    paths |= {i["path"] for s in projected if "downwardAPI" in s for i in s["downwardAPI"]["items"]}
    assert paths == {"token", "ca.crt", "namespace"}
    sidecar_mounts = cluster["spec"]["autoscalerOptions"]["volumeMounts"]
    assert [(m["name"], m["mountPath"], m.get("readOnly")) for m in sidecar_mounts
            if m["name"] in token_volumes] == [(token_volumes.pop(), TOKEN_MOUNT, True)]
    for pod in (head_pod, *worker_pods):
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] not in {v["name"] for v in head_pod["volumes"] if "projected" in v}, container["name"]
                assert not mount["mountPath"].startswith("/var/run/secrets"), container["name"]


def _policy_peers(policy: dict[str, Any], direction: str) -> list[tuple[dict[str, Any], list[Any]]]:
    key, peer_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return [(rule, rule.get(peer_key)) for rule in policy["spec"].get(key, [])]


@pytest.mark.parametrize("source", SOURCES)
def test_network_policy(source, rendered):
    """Default deny both ways; in: the namespace, the operator to the head's dashboard; out: the
    namespace, cluster DNS, the API server from the head pod only, storage by address; nothing
    ever reaches the cloud metadata endpoint."""
    docs = rendered[source]
    policies = of_kind(docs, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "a default-deny policy, ingress and egress, for the whole namespace"
    cluster_name = one(docs, "RayCluster")["metadata"]["name"]
    head = {"matchLabels": {"ray.io/cluster": cluster_name, "ray.io/node-type": "head"}}
    operator = {"matchLabels": {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}}
    dns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    seen = set()
    for policy in policies:
        for direction in policy["spec"]["policyTypes"]:
            for rule, peers in _policy_peers(policy, direction):
                assert peers, f"{ident(policy)}: a {direction} rule without peers admits everything"
                for peer in peers:
                    if "ipBlock" in peer:
                        assert direction == "Egress", ident(policy)
                        block = peer["ipBlock"]
                        network = ipaddress.ip_network(block["cidr"])
                        excepted = any(METADATA_IP in ipaddress.ip_network(e) for e in block.get("except", []))
                        assert METADATA_IP not in network or excepted, f"{ident(policy)} admits {METADATA_IP}"
                        assert network.num_addresses <= 256, f"{ident(policy)}: {network} is wide"
                        assert rule.get("ports"), f"{ident(policy)}: ipBlock without ports"
                        if {p["port"] for p in rule["ports"]} & {443, 6443} and policy["spec"]["podSelector"] == head:
                            seen.add("apiserver")
                        else:
                            assert {p["port"] for p in rule["ports"]} == {443}, ident(policy)
                            seen.add("storage")
                    elif peer == {"podSelector": {}}:
                        seen.add(f"namespace-{direction}")
                    elif peer == dns:
                        assert direction == "Egress"
                        assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]
                        seen.add("dns")
                    else:  # the operator, to the head's dashboard only
                        assert direction == "Ingress", f"{ident(policy)}: unexpected egress peer {peer}"
                        assert peer["namespaceSelector"] == operator and peer["podSelector"]["matchLabels"]
                        assert policy["spec"]["podSelector"] == head
                        assert rule.get("ports") == [{"protocol": "TCP", "port": 8265}]
                        seen.add("operator")
    assert seen == {"namespace-Ingress", "namespace-Egress", "dns", "operator", "apiserver", "storage"}
    workers_to_apiserver = [p for p in policies if "Egress" in p["spec"]["policyTypes"]
                            and any(port.get("port") in (6443,) for r in p["spec"].get("egress", [])
                                    for port in r.get("ports", []))]
    assert all(p["spec"]["podSelector"] == head for p in workers_to_apiserver), "API server: the head pod only"


@pytest.mark.parametrize("source", SOURCES)
def test_rbac_is_least_privilege(source, rendered):
    docs = rendered[source]
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    roles = {r["metadata"]["name"]: r for r in of_kind(docs, "Role")}
    for role in roles.values():
        for rule in role["rules"]:
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule[field], f"{ident(role)}: wildcard {field}"
            if "secrets" in rule["resources"]:
                assert rule.get("resourceNames"), f"{ident(role)}: secrets only by name"
                assert set(rule["verbs"]) == {"get"}, f"{ident(role)}: secrets read-only"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert not {"pods/exec", "pods/attach"} & set(rule["resources"]), "no exec into Ray pods"

    def verbs(role: str, resource: str, group: str = "") -> set[str]:
        rules = [r for r in roles[role]["rules"] if resource in r["resources"] and group in r["apiGroups"]]
        return {verb for rule in rules for verb in rule["verbs"]}

    # The head's account: `get` of the one trial quota, by name, and nothing else.
    assert roles["raytune-head"]["rules"] == [
        {"apiGroups": [""], "resources": ["resourcequotas"], "resourceNames": ["raytune-trials"], "verbs": ["get"]}]
    assert {"create", "get", "list", "delete"} <= verbs("raytune-tenant", "rayjobs", "ray.io")
    assert verbs("raytune-tenant", "rayclusters", "ray.io") <= {"get", "list", "watch"}
    assert "get" in verbs("raytune-tenant", "resourcequotas")
    assert verbs("raytune-tenant", "pods/portforward") == {"create"}
    assert verbs("raytune-tenant", "pods/log") == {"get"}
    assert verbs("raytune-tenant", "pods") <= {"get", "list", "watch"}, "tenants do not create pods"
    admin_only = {"resourcequotas", "limitranges", "roles", "rolebindings", "networkpolicies", "rayclusters",
                  "poddisruptionbudgets", "serviceaccounts"}
    for role in roles.values():  # nobody but the admin edits these
        for rule in role["rules"]:
            if admin_only & set(rule["resources"]):
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, ident(role)

    head_pod, *worker_pods = ray_pods(one(docs, "RayCluster"))
    head_binding = one(docs, "RoleBinding", "raytune-head")
    assert head_binding["roleRef"]["name"] == "raytune-head"
    assert [s["name"] for s in head_binding["subjects"]] == [head_pod["serviceAccountName"]]
    accounts = {sa["metadata"]["name"] for sa in of_kind(docs, "ServiceAccount")}
    assert {pod["serviceAccountName"] for pod in [head_pod, *worker_pods]} <= accounts
    quota_names = {quota["metadata"]["name"] for quota in of_kind(docs, "ResourceQuota")}
    if source != "base":
        assert set(roles["raytune-head"]["rules"][0]["resourceNames"]) <= quota_names


def test_tenant_can_read_exactly_the_token_secret(rendered):
    secret_name = one(rendered["base"], "RayCluster")["spec"]["authOptions"]["secretName"]
    tenant_rules = one(rendered["base"], "Role", "raytune-tenant")["rules"]
    (rule,) = [r for r in tenant_rules if "secrets" in r["resources"]]
    assert rule["resourceNames"] == [secret_name]


@pytest.mark.parametrize("source", SOURCES)
def test_head_survives_voluntary_disruption(source, rendered):
    """A PDB allowing no disruption of the head, and the cluster autoscaler's safe-to-evict
    annotation on its pod template; workers carry neither."""
    docs = rendered[source]
    cluster = one(docs, "RayCluster")
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 0, "selector": {"matchLabels": {
        "ray.io/cluster": cluster["metadata"]["name"], "ray.io/node-type": "head"}}}
    head_meta = cluster["spec"]["headGroupSpec"]["template"]["metadata"]
    assert head_meta["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert "cluster-autoscaler.kubernetes.io/safe-to-evict" not in group["template"]["metadata"].get("annotations", {})


# --------------------------------------------------------------------------- the experiment


@pytest.mark.parametrize("source", SOURCES)
def test_rayjob_runs_on_the_tenant_cluster_and_resumes(source, rendered):
    """HTTPMode + clusterSelector and no backoffLimit (KubeRay rejects it there): after a head
    loss the operator submits the same entrypoint again, which resumes (--resume-if-exists)."""
    docs = rendered[source]
    job, cluster = one(docs, "RayJob")["spec"], one(docs, "RayCluster")
    assert job["entrypoint"] == ENTRYPOINT
    assert (cs.REPO_ROOT / ENTRYPOINT.split()[2]).is_file(), "the example the image carries in examples/"
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert job["submissionMode"] == "HTTPMode", "only HTTPMode resubmits a job the new head lacks"
    assert "rayClusterSpec" not in job and "submitterPodTemplate" not in job
    assert "backoffLimit" not in job, "KubeRay rejects backoffLimit with clusterSelector"
    assert "jobId" not in job, "the operator picks one per RayJob"
    assert job.get("entrypointNumCpus", 0) == 0, "the head has num-cpus 0"
    assert not job.get("shutdownAfterJobFinishes"), "the tenant's cluster outlives its jobs"


@pytest.mark.parametrize("source", SOURCES)
def test_driver_gets_a_graceful_stop(source, rendered):
    """`ray job stop` / deleting the RayJob signal the driver with RAY_JOB_STOP_SIGNAL and wait
    RAY_JOB_STOP_WAIT_TIME_S before SIGKILL: long enough to save the experiment and its summary."""
    env = env_of(head_container(one(rendered[source], "RayCluster")))
    assert env["RAY_JOB_STOP_SIGNAL"]["value"] in ("SIGINT", "SIGTERM"), "the two Ray's job supervisor accepts"
    assert int(env["RAY_JOB_STOP_WAIT_TIME_S"]["value"]) >= 30


@pytest.mark.parametrize("source", SOURCES)
def test_experiments_volume_is_shared_by_head_and_workers(source, rendered):
    docs = rendered[source]
    pvc = one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert f"--storage-path {EXPERIMENTS_MOUNT}" in one(docs, "RayJob")["spec"]["entrypoint"]
    for pod in ray_pods(one(docs, "RayCluster")):
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod["volumes"] if "persistentVolumeClaim" in v}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert claims[mounts[EXPERIMENTS_MOUNT]] == pvc["metadata"]["name"]


def test_autoscaler_and_upgrade_settings(rendered):
    cluster = one(rendered["base"], "RayCluster")
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    options = cluster["spec"]["autoscalerOptions"]
    assert options["version"] == "v2" and options["upscalingMode"] == "Default"
    assert 0 < options["idleTimeoutSeconds"] <= 600
    for pod in ray_pods(cluster):
        assert pod.get("restartPolicy", "Never") == "Never", "autoscaler v2 wants restartPolicy Never"
    assert cluster["spec"]["upgradeStrategy"] == {"type": "Recreate"}, "image rollouts reach running pods"


# --------------------------------------------------------------------------- operator and image


def test_crds_are_of_the_pinned_release(crds):
    assert f"v{kr.KUBERAY_VERSION}" in (crds / "README.md").read_text()


@pytest.mark.parametrize("required, outcome", [("", "1 skipped"), ("1", "1 error")])
def test_missing_crds_skip_on_a_plain_clone_and_fail_in_ci(tmp_path, required, outcome):
    """A clone with nothing beside it skips the CRD checks, saying what to fetch; with
    $RAYTUNE_K8S_REQUIRE_CRDS (set by .ci/run) their absence fails the run."""
    env = {**os.environ, "RAYTUNE_K8S_CRDS_DIR": str(tmp_path), cs.REQUIRE_CRDS_ENV: required}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         f"{__file__}::test_crds_are_of_the_pinned_release"],
        capture_output=True, text=True, env=env, cwd=cs.REPO_ROOT, timeout=300)
    assert outcome in proc.stdout, proc.stdout[-3000:]
    assert proc.returncode == (0 if not required else 1), proc.stdout[-3000:]
    assert "ray.io_rayclusters.yaml" in proc.stdout and "RAYTUNE_K8S_CRDS_DIR" in proc.stdout


def test_ci_requires_the_crds():
    assert f"export {cs.REQUIRE_CRDS_ENV}=1" in (cs.REPO_ROOT / ".ci" / "run").read_text()


def test_operator_is_pinned_to_the_release_of_the_crds():
    readme = (CLUSTER / "operator" / "README.md").read_text()
    values = helm_values()
    assert set(re.findall(r"kuberay/kuberay-operator --version (\S+)", readme)) == {kr.KUBERAY_VERSION}
    assert values["image"]["tag"] == f"v{kr.KUBERAY_VERSION}"
    assert f"pinned to {kr.KUBERAY_VERSION}" in OPERATOR_VALUES.read_text()
    walk_through = (CLUSTER / "README.md").read_text()
    assert set(re.findall(r"kuberay/kuberay-operator --version (\S+)", walk_through)) == {kr.KUBERAY_VERSION}
    assert sorted(values["watchNamespace"]) == sorted(TENANTS)
    assert values["singleNamespaceInstall"] is True, "namespaced RBAC for the operator"
    assert values["resources"]["requests"] == values["resources"]["limits"]
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert f"--namespace {OPERATOR_NAMESPACE}" in readme
    assert "helm upgrade" in readme and "--server-side" in readme, "how CRDs are upgraded"
    # A new head must be up within this window for the RayJob's resubmission (README).
    env = {e["name"]: e["value"] for e in values["env"]}
    assert int(env["RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS"]) >= 600


def _dockerfile() -> tuple[list[tuple[str, str]], dict[int, str]]:
    """(instruction, argument) pairs of cluster/image/Dockerfile, and the bodies of RUN heredocs
    by instruction index. Continuation lines start with a space."""
    instructions: list[tuple[str, str]] = []
    heredocs: dict[int, str] = {}
    lines = iter((CLUSTER / "image" / "Dockerfile").read_text().splitlines())
    for line in lines:
        if not line or line.startswith(("#", " ")):
            continue
        op, _, arg = line.partition(" ")
        instructions.append((op, arg))
        marker = re.fullmatch(r"<<'?(\w+)'?", arg)
        if op == "RUN" and marker:
            body = []
            for body_line in lines:
                if body_line == marker.group(1):
                    break
                body.append(body_line)
            heredocs[len(instructions) - 1] = "\n".join(body) + "\n"
    return instructions, heredocs


def test_image_recipe(rendered):
    instructions, _ = _dockerfile()
    cluster = one(rendered["base"], "RayCluster")
    assert ("FROM", f"rayproject/ray:{cluster['spec']['rayVersion']}-py311-cpu") in instructions
    users = [arg for op, arg in instructions if op == "USER"]
    assert users[-1].split(":")[0] == "1000", "the image runs as ray (uid 1000)"
    runs = [(i, arg) for i, (op, arg) in enumerate(instructions) if op == "RUN"]
    torch_at = next(i for i, arg in runs if re.search(r"--index-url \"?\$TORCH_INDEX_URL\"? \"?torch==", arg))
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in instructions
    project_at = next(i for i, arg in runs if re.search(r"pip install -c /src/constraints.txt /src\b", arg))
    copy_at = next(i for i, (op, arg) in enumerate(instructions) if op == "COPY" and arg.endswith(" . /src"))
    assert torch_at < copy_at < project_at, "CPU torch is in place before the project's install"
    torch_pin = re.search(r'"torch==([^"]+)"', instructions[torch_at][1]).group(1)
    assert f'"torch=={torch_pin}"' in (cs.REPO_ROOT / "pyproject.toml").read_text()
    workdir = [arg for op, arg in instructions if op == "WORKDIR"][-1]
    for pod in ray_pods(cluster):
        assert pod["containers"][0]["workingDir"] == workdir, "the RayJob's relative paths start there"

    # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile; it must keep what pip needs.
    text = (CLUSTER / "image" / "Dockerfile").read_text()
    assert text.startswith("# syntax=docker/dockerfile:1") and "BuildKit" in text
    ignore_file = (CLUSTER / "image" / "Dockerfile.dockerignore").read_text()
    ignored = {line.strip() for line in ignore_file.splitlines() if line.strip() and not line.startswith("#")}
    assert not ignored & {"pyproject.toml", "constraints.txt", "README.md", "raytune_k8s", "examples", "*.md", "*.toml", "*.txt"}
    assert ".git" in ignored


KATIB_PROGRAMS = {"/opt/pytorch-mnist/mnist.py": "raytune_k8s.trials.katib_programs.pytorch_mnist",
                  "/opt/pbt/pbt_test.py": "raytune_k8s.trials.katib_programs.simple_pbt",
                  "/opt/tf-mnist-with-summaries/mnist.py": "raytune_k8s.trials.katib_programs.tf_mnist_with_summaries",
                  "/app/main.py": "raytune_k8s.trials.katib_programs.xgboost_lightgbm"}


def test_image_installs_the_katib_program_stand_ins(tmp_path):
    """The image's heredoc, run here with /opt and /app moved under tmp_path, writes Python
    programs at Katib's example paths that run our modules with the same arguments."""
    _, heredocs = _dockerfile()
    (script,) = [body for body in heredocs.values() if "/opt/" in body]
    script = script.replace("/opt/", f"{tmp_path}/opt/").replace(" /app/", f" {tmp_path}/app/")
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    written = {f"/{p.relative_to(tmp_path)}" for p in tmp_path.rglob("*.py")}
    assert written == set(KATIB_PROGRAMS)
    for path, module in KATIB_PROGRAMS.items():
        program = tmp_path / path.lstrip("/")
        source = program.read_text()
        compile(source, str(program), "exec")
        assert f'"{module}"' in source and "sys.argv[1:]" in source
        if (cs.REPO_ROOT / (module.replace(".", "/") + ".py")).is_file():
            run = subprocess.run([sys.executable, str(program), "--help"], capture_output=True, text=True,
                                 timeout=120, cwd=cs.REPO_ROOT,
                                 env={"PYTHONPATH": str(cs.REPO_ROOT), "PATH": "/usr/bin:/bin"})
            assert run.returncode == 0, run.stderr


def test_ray_version_matches_the_project_pin(rendered):
    """Image, RayCluster and pyproject.toml agree on the Ray version."""
    pins = re.findall(r'"ray(?:\[[^\]]*\])?==([^"]+)"', (cs.REPO_ROOT / "pyproject.toml").read_text())
    assert pins, "pyproject.toml pins ray"
    assert pins == [one(rendered["base"], "RayCluster")["spec"]["rayVersion"]]


# --------------------------------------------------------------------------- README claims


def test_readme_claims_match_the_manifests(rendered, platform):
    readme = (CLUSTER / "README.md").read_text()
    assert "--from-literal=" not in readme, "a token on the command line lands in shell history"
    assert "--from-file=auth_token=" in readme
    assert "kubectl apply -k cluster/platform" in readme
    assert "backoffLimit: 2" not in readme
    for name in ("RAYTUNE_K8S_QUOTA_CPU", "RAYTUNE_K8S_QUOTA_MEMORY", "RAY_JOB_STOP_SIGNAL",
                 "RAY_JOB_STOP_WAIT_TIME_S", "RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS",
                 "automountServiceAccountToken: false", "169.254.169.254", "deletionStrategy",
                 "activeDeadlineSeconds", "nvidia.com/gpu", "safe-to-evict", "upgradeStrategy"):
        assert name in readme, name
    env = env_of(head_container(one(rendered["user2"], "RayCluster")))
    assert f"RAY_JOB_STOP_SIGNAL={env['RAY_JOB_STOP_SIGNAL']['value']}" in readme
    assert f"RAY_JOB_STOP_WAIT_TIME_S={env['RAY_JOB_STOP_WAIT_TIME_S']['value']}" in readme
    for policy in of_kind(platform, "ValidatingAdmissionPolicy"):
        assert policy["metadata"]["name"] in readme
