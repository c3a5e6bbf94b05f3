"""Offline checks of cluster/: KubeRay manifests, tenant overlays, operator values, image.

Nothing here needs a Kubernetes cluster, kubectl or Ray:
* built-in kinds are validated against the Kubernetes OpenAPI schemas (kubernetes-validate,
  strict: unknown fields are errors);
* RayCluster and RayJob against KubeRay's CRD schemas in ../shared/crds (or
  $RAYTUNE_K8S_CRDS_DIR), made strict the same way; skipped, saying why, when they are absent;
* the tenant overlays are rendered in Python (cluster_schema.render) and checked like the base;
* then the design rules: the quota arithmetic of each tenant, security defaults, least-privilege
  RBAC, and the RayJob's resume-on-restart wiring.
"""

from __future__ import annotations

import math
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
except ImportError:  # not a package: the helper module sits beside this file
    if str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cluster_schema as cs

CLUSTER = cs.CLUSTER_DIR
BASE = CLUSTER / "base"
TENANTS_DIR = CLUSTER / "tenants"

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
TRIAL_CLASS, HEAD_CLASS = "raytune-trial", "raytune-head"
RAY_KINDS = frozenset(cs.CRD_FILES)
ENTRYPOINT = ("raytune-k8s run examples/mnist-mxnet-random.yaml "
              "--storage-path /mnt/experiments --resume-if-exists")
EXPERIMENTS_MOUNT = "/mnt/experiments"
OPERATOR_NAMESPACE = "ray-system"
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}

SOURCES = ["base", *TENANTS]


# --------------------------------------------------------------------------- helpers


def render_source(source: str) -> list[dict[str, Any]]:
    return cs.render(BASE if source == "base" else TENANTS_DIR / source)


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


def pod_total(pod_containers: list[dict[str, Any]], field: str, resource: str) -> Decimal:
    """Sum of one resource over a pod's (non-init) containers, for requests or limits."""
    return sum((q(c["resources"][field][resource]) for c in pod_containers), Decimal(0))


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


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {source: render_source(source) for source in SOURCES}


@pytest.fixture(scope="module")
def crds() -> Path:
    path = cs.crds_dir()
    missing = [name for name in cs.CRD_FILES.values() if not (path / name).is_file()]
    if missing:
        pytest.skip(f"KubeRay CRD schemas not found ({', '.join(missing)} in {path}; set "
                    "RAYTUNE_K8S_CRDS_DIR): RayCluster/RayJob cannot be checked against the CRDs")
    return path


# --------------------------------------------------------------------------- schema validation


def test_every_manifest_under_cluster_is_checked():
    """No YAML file escapes validation: each is a kustomization, a patch or resource that one
    references, or the operator's Helm values."""
    referenced: set[Path] = set()
    for kust_file in CLUSTER.rglob("kustomization.yaml"):
        kust = cs.load_docs(kust_file)[0]
        referenced.add(kust_file)
        for entry in kust.get("resources", []) + [p["path"] for p in kust.get("patches", [])]:
            path = (kust_file.parent / entry).resolve()
            assert path.exists(), f"{kust_file}: {entry} does not exist"
            referenced.add(path / "kustomization.yaml" if path.is_dir() else path)
    helm_values = {CLUSTER / "operator" / "values.yaml"}
    orphans = [p for p in CLUSTER.rglob("*.y*ml") if p.resolve() not in referenced | helm_values]
    assert not orphans, f"manifests no kustomization includes (so no test checks): {orphans}"


@pytest.mark.parametrize("source", SOURCES)
def test_builtin_kinds_match_kubernetes_openapi(source, rendered):
    version = k8s_version()
    failures, checked = [], 0
    for doc in rendered[source]:
        if doc["kind"] in RAY_KINDS:
            continue
        checked += 1
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{ident(doc)}: {exc}")
    assert checked >= 10
    assert not failures, f"Kubernetes {version} schema violations:\n" + "\n".join(failures)


def test_kubernetes_validation_rejects_a_misspelled_field(rendered):
    quota = yaml.safe_load(yaml.safe_dump(one(rendered["user2"], "ResourceQuota", "raytune-trials")))
    quota["spec"]["hardd"] = quota["spec"].pop("hard")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(quota, k8s_version(), strict=True)


@pytest.mark.parametrize("source", SOURCES)
def test_ray_resources_match_kuberay_crds(source, rendered, crds):
    ray_docs = [d for d in rendered[source] if d["kind"] in RAY_KINDS]
    assert {d["kind"] for d in ray_docs} == RAY_KINDS
    failures = []
    for doc in ray_docs:
        failures += [f"{ident(doc)}: {err}" for err in cs.crd_errors(doc)]
        # The CRD leaves metadata to the API server: check it as ObjectMeta (of any built-in kind).
        as_configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
        try:
            kubernetes_validate.validate(as_configmap, k8s_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{ident(doc)} metadata: {exc}")
    assert not failures, f"KubeRay CRD ({crds}) violations:\n" + "\n".join(failures)


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    cs.apply_json6902(doc, [{"op": "add", "path": path, "value": value}])


BAD_EDITS = [
    # (kind, JSON pointer, value): each must be rejected by the CRD schema.
    ("RayCluster", "/spec/headGroupSpec/rayStartParam", {"num-cpus": "0"}),          # typo
    ("RayCluster", "/spec/enableInTreeAutoScaling", True),                          # typo
    ("RayCluster", "/spec/autoscalerOptions/idleTimeoutSecond", 60),               # typo
    ("RayCluster", "/spec/workerGroupSpecs/0/template/spec/containers/0/resource", {}),  # typo
    ("RayCluster", "/spec/authOptions/mode", "tokens"),                             # not in enum
    ("RayCluster", "/spec/autoscalerOptions/version", "v3"),                        # not in enum
    ("RayCluster", "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/cpu", "two"),
    ("RayCluster", "/spec/workerGroupSpecs/0/maxReplicas", "9"),                    # not an integer
    ("RayJob", "/spec/submisionMode", "HTTPMode"),                                  # typo
    ("RayJob", "/spec/backoffLimit", "2"),                                          # not an integer
]


@pytest.mark.parametrize("kind,path,value", BAD_EDITS, ids=[f"{k}{p}" for k, p, _ in BAD_EDITS])
def test_crd_validation_rejects_bad_fields(kind, path, value, rendered, crds):
    doc = yaml.safe_load(yaml.safe_dump(one(rendered["user2"], kind)))
    assert cs.crd_errors(doc) == []
    _set(doc, path, value)
    assert cs.crd_errors(doc), f"{kind} with {path}={value!r} was accepted"


def test_crd_int_or_string_accepts_both(rendered, crds):
    """Quantities are x-kubernetes-int-or-string: 2 and "2" are both valid."""
    doc = yaml.safe_load(yaml.safe_dump(one(rendered["user2"], "RayCluster")))
    _set(doc, "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/cpu", 2)
    _set(doc, "/spec/headGroupSpec/template/spec/containers/0/resources/requests/memory", "4096Mi")
    assert cs.crd_errors(doc) == []


# --------------------------------------------------------------------------- overlays


@pytest.mark.parametrize("tenant", TENANTS)
def test_overlay_puts_everything_in_the_tenant_namespace(tenant, rendered):
    docs = rendered[tenant]
    assert one(docs, "Namespace")["metadata"]["name"] == tenant
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for doc in docs:
        if doc["kind"] in cs.CLUSTER_SCOPED_KINDS:
            assert "namespace" not in doc["metadata"], ident(doc)
        else:
            assert doc["metadata"]["namespace"] == tenant, ident(doc)
    for binding in of_kind(docs, "RoleBinding"):
        for subject in binding["subjects"]:
            if subject["kind"] == "ServiceAccount":
                assert subject["namespace"] == tenant, ident(binding)
            if subject["kind"] == "User":
                assert subject["name"] == tenant, ident(binding)


@pytest.mark.parametrize("tenant", TENANTS)
def test_renderer_agrees_with_kustomize(tenant, rendered):
    """Where kubectl is installed, its kustomize must render the overlay exactly as our renderer."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the overlay is checked with the in-test renderer only")
    out = subprocess.run([kubectl, "kustomize", str(TENANTS_DIR / tenant)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    by_key = lambda docs: {(d["kind"], d["metadata"]["name"]): d for d in docs}  # noqa: E731
    theirs = by_key(d for d in yaml.safe_load_all(out) if d)
    ours = by_key(rendered[tenant])
    assert theirs.keys() == ours.keys()
    for key in ours:
        assert theirs[key] == ours[key], f"{key} differs from kubectl kustomize"


def test_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\nresources: []\n")
    with pytest.raises(cs.RenderError):
        cs.render(tmp_path)


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
    for name in (HEAD_CLASS, TRIAL_CLASS):
        assert one(docs, "PriorityClass", name)["preemptionPolicy"] == "Never"

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
def test_no_pod_escapes_the_tenant_quota(tenant, rendered):
    """Pods of any other PriorityClass (or none) fall into a catch-all quota, and the LimitRange
    admits every Ray container while keeping limits == requests."""
    docs = rendered[tenant]
    quotas = [quota["spec"] for quota in of_kind(docs, "ResourceQuota")]
    everything_else = {"scopeName": "PriorityClass", "operator": "NotIn", "values": [TRIAL_CLASS, HEAD_CLASS]}
    catch_all = [quota for quota in quotas
                 if everything_else in quota.get("scopeSelector", {}).get("matchExpressions", [])]
    assert len(catch_all) == 1 and {"requests.cpu", "requests.memory"} <= set(catch_all[0]["hard"])
    unscoped = [quota["hard"] for quota in quotas if "scopeSelector" not in quota]
    assert any(hard.get("count/rayclusters.ray.io") == "1" for hard in unscoped)

    (limits,) = one(docs, "LimitRange")["spec"]["limits"]
    assert limits["type"] == "Container"
    assert {k: q(v) for k, v in limits["maxLimitRequestRatio"].items()} == {"cpu": 1, "memory": 1}
    assert q(limits["default"]["cpu"]) == q(limits["defaultRequest"]["cpu"])
    for doc in docs:
        for where, container, _pod in cs.containers(doc):
            for resource, maximum in limits["max"].items():
                limit = container["resources"]["limits"][resource]
                assert q(limit) <= q(maximum), f"{where}: {resource} {limit} over the LimitRange max"


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
        for _where, _container, pod in cs.containers(doc):
            assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")

    cluster = one(docs, "RayCluster")["spec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["authOptions"].get("secretName"), "the token lives in a Secret the admin controls"
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    assert not cluster["headGroupSpec"].get("enableIngress")
    for service in of_kind(docs, "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", ident(service)
    assert not of_kind(docs, "Secret"), "no secret material in git"
    worker_pod = cluster["workerGroupSpecs"][0]["template"]["spec"]
    assert worker_pod["automountServiceAccountToken"] is False
    if source != "base":
        labels = one(docs, "Namespace")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("source", SOURCES)
def test_network_policy_admits_only_the_namespace_and_the_operator(source, rendered):
    policies = of_kind(rendered[source], "NetworkPolicy")
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {}
                    and p["spec"]["policyTypes"] == ["Ingress"] and not p["spec"].get("ingress")]
    assert default_deny, "a default-deny ingress policy for the whole namespace"
    cluster_name = one(rendered[source], "RayCluster")["metadata"]["name"]
    head_labels = {"ray.io/cluster": cluster_name, "ray.io/node-type": "head"}
    operator_namespace = {"matchLabels": {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{ident(policy)}: a rule without 'from' admits every source"
            for peer in rule["from"]:
                assert "ipBlock" not in peer, ident(policy)
                if "namespaceSelector" not in peer:
                    continue  # a podSelector alone means: pods of this same namespace
                # Only the KubeRay operator, only to the head's dashboard port.
                assert peer["namespaceSelector"] == operator_namespace, ident(policy)
                assert peer.get("podSelector", {}).get("matchLabels"), "operator pods only"
                assert policy["spec"]["podSelector"] == {"matchLabels": head_labels}
                assert rule.get("ports") == [{"protocol": "TCP", "port": 8265}]


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

    def verbs(role: str, resource: str, group: str = "") -> set[str]:
        rules = [r for r in roles[role]["rules"] if resource in r["resources"] and group in r["apiGroups"]]
        return {verb for rule in rules for verb in rule["verbs"]}

    assert {"get", "list"} <= verbs("raytune-head", "resourcequotas")
    assert {"create", "get", "list", "delete"} <= verbs("raytune-tenant", "rayjobs", "ray.io")
    assert verbs("raytune-tenant", "rayclusters", "ray.io") <= {"get", "list", "watch"}
    assert "get" in verbs("raytune-tenant", "resourcequotas")
    assert verbs("raytune-tenant", "pods/portforward") == {"create"}
    assert verbs("raytune-tenant", "pods/log") == {"get"}
    admin_only = {"resourcequotas", "limitranges", "roles", "rolebindings", "networkpolicies", "rayclusters"}
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


def test_tenant_can_read_exactly_the_token_secret(rendered):
    secret_name = one(rendered["base"], "RayCluster")["spec"]["authOptions"]["secretName"]
    tenant_rules = one(rendered["base"], "Role", "raytune-tenant")["rules"]
    (rule,) = [r for r in tenant_rules if "secrets" in r["resources"]]
    assert rule["resourceNames"] == [secret_name]


# --------------------------------------------------------------------------- the experiment


@pytest.mark.parametrize("source", SOURCES)
def test_rayjob_runs_on_the_tenant_cluster_and_resumes(source, rendered):
    docs = rendered[source]
    job, cluster = one(docs, "RayJob")["spec"], one(docs, "RayCluster")
    assert job["entrypoint"] == ENTRYPOINT
    assert (cs.REPO_ROOT / ENTRYPOINT.split()[2]).is_file(), "the example the image carries in examples/"
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert "rayClusterSpec" not in job
    assert job["submissionMode"] in SUBMISSION_MODES - {"SidecarMode", "InteractiveMode"}
    assert job["backoffLimit"] >= 1, "a failed submission is retried (and resumes)"
    assert "jobId" not in job, "a fixed jobId would collide on retry"
    assert job.get("entrypointNumCpus", 0) == 0, "the head has num-cpus 0"


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


def test_head_tells_raytune_k8s_its_namespace_and_quota(rendered):
    for tenant in TENANTS:
        docs = rendered[tenant]
        head = one(docs, "RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in head["env"]}
        downward_namespace = {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert env["RAYTUNE_K8S_NAMESPACE"]["valueFrom"] == downward_namespace
        quota = one(docs, "ResourceQuota", env["RAYTUNE_K8S_RESOURCEQUOTA"]["value"])
        assert quota is quota_for_class(docs, TRIAL_CLASS)


def test_autoscaler_v2_settings(rendered):
    cluster = one(rendered["base"], "RayCluster")
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    options = cluster["spec"]["autoscalerOptions"]
    assert options["version"] == "v2" and options["upscalingMode"] == "Default"
    assert 0 < options["idleTimeoutSeconds"] <= 600
    for pod in ray_pods(cluster):
        assert pod.get("restartPolicy", "Never") == "Never", "autoscaler v2 wants restartPolicy Never"


# --------------------------------------------------------------------------- operator and image


def test_operator_chart_is_pinned():
    readme = (CLUSTER / "operator" / "README.md").read_text()
    (version,) = set(re.findall(r"kuberay/kuberay-operator --version (\d+\.\d+\.\d+)", readme))
    values = yaml.safe_load((CLUSTER / "operator" / "values.yaml").read_text())
    assert values["image"]["tag"] == f"v{version}"
    assert f"pinned to {version}" in (CLUSTER / "operator" / "values.yaml").read_text()
    assert sorted(values["watchNamespace"]) == sorted(TENANTS)
    assert values["singleNamespaceInstall"] is True, "namespaced RBAC for the operator"
    assert values["resources"]["requests"] == values["resources"]["limits"]
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert f"--namespace {OPERATOR_NAMESPACE}" in readme
    # The setup walk-through in cluster/README.md installs the same version.
    walk_through = (CLUSTER / "README.md").read_text()
    assert set(re.findall(r"kuberay/kuberay-operator --version (\S+)", walk_through)) == {version}


def test_image_recipe(rendered):
    image_dir = CLUSTER / "image"
    dockerfile = (image_dir / "Dockerfile").read_text()
    # (instruction, argument) pairs; continuation lines start with a space.
    instructions = [tuple(line.split(None, 1)) for line in dockerfile.splitlines()
                    if line and not line.startswith(("#", " "))]
    cluster = one(rendered["base"], "RayCluster")
    assert ("FROM", f"rayproject/ray:{cluster['spec']['rayVersion']}-py311-cpu") in instructions
    users = [arg for op, arg in instructions if op == "USER"]
    assert users[-1].split(":")[0] == "1000", "the image runs as ray (uid 1000)"
    copy_at = next(i for i, (op, arg) in enumerate(instructions) if op == "COPY" and arg.endswith(" /src"))
    pip_at = next(i for i, (op, arg) in enumerate(instructions)
                  if op == "RUN" and re.search(r"pip install .*/src\b", arg))
    assert copy_at < pip_at
    (image,) = {c["image"] for _w, c, _p in cs.containers(cluster) if "image" in c}
    assert f"docker build -f cluster/image/Dockerfile -t {image} ." in dockerfile
    workdir = [arg for op, arg in instructions if op == "WORKDIR"][-1]
    for pod in ray_pods(cluster):
        assert pod["containers"][0]["workingDir"] == workdir, "the RayJob's relative paths start there"

    # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile; it must keep what pip needs.
    ignore_file = (image_dir / "Dockerfile.dockerignore").read_text()
    ignored = {line.strip() for line in ignore_file.splitlines() if line.strip() and not line.startswith("#")}
    assert not ignored & {"pyproject.toml", "README.md", "raytune_k8s", "examples", "*.md", "*.toml"}
    assert ".git" in ignored


def test_ray_version_matches_the_project_pin(rendered):
    """Image, RayCluster and pyproject.toml agree on the Ray version."""
    pyproject = cs.REPO_ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("no pyproject.toml")
    pins = re.findall(r'"ray(?:\[[^\]]*\])?==([^"]+)"', pyproject.read_text())
    assert pins, "pyproject.toml pins ray"
    assert pins == [one(rendered["base"], "RayCluster")["spec"]["rayVersion"]]
