"""The platform's ValidatingAdmissionPolicies (cluster/platform/admission-policies.yaml), with
their CEL evaluated offline by cel-python against our rendered manifests: the tenant's own
RayJob and Ray pods are admitted, the confused-deputy shapes of a RayJob and pods borrowing the
raytune PriorityClasses outside tenant namespaces are refused.

Bindings are applied the way the API server does for these: a namespaceSelector on the object's
namespace labels, then the policy's matchConstraints, matchConditions and validations.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import celpy
import pytest

try:  # tests/ may or may not be a package
    from . import cluster_schema as cs
except ImportError:
    if str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cluster_schema as cs

_ENV = celpy.Environment()


@pytest.fixture(scope="module")
def platform() -> list[dict[str, Any]]:
    return cs.render(cs.CLUSTER_DIR / "platform")


@pytest.fixture(scope="module")
def tenant() -> list[dict[str, Any]]:
    return cs.render(cs.CLUSTER_DIR / "tenants" / "user2")


def _cel(expression: str, activation: dict[str, Any]) -> bool:
    program = _ENV.program(_ENV.compile(expression))
    return bool(program.evaluate({k: celpy.json_to_cel(v) for k, v in activation.items()}))


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "Exists" and key not in labels or op == "DoesNotExist" and key in labels:
            return False
        if op == "In" and labels.get(key) not in values or op == "NotIn" and labels.get(key) in values:
            return False
    return True


def admit(platform: list[dict[str, Any]], obj: dict[str, Any], resource: str, namespace_labels: dict[str, str],
          operation: str = "CREATE", old: dict[str, Any] | None = None) -> list[str]:
    """The messages of every policy that would deny ``obj`` (empty: admitted)."""
    group = obj["apiVersion"].rpartition("/")[0]
    policies = {p["metadata"]["name"]: p for p in platform if p["kind"] == "ValidatingAdmissionPolicy"}
    denials = []
    for binding in (b for b in platform if b["kind"] == "ValidatingAdmissionPolicyBinding"):
        assert binding["spec"]["validationActions"] == ["Deny"]
        if not _selector_matches(binding["spec"]["matchResources"]["namespaceSelector"], namespace_labels):
            continue
        policy = policies[binding["spec"]["policyName"]]["spec"]
        rules = policy["matchConstraints"]["resourceRules"]
        if not any(group in r["apiGroups"] and resource in r["resources"] and operation in r["operations"] for r in rules):
            continue
        activation = {"object": obj, "oldObject": old, "request": {"operation": operation}}
        if not all(_cel(c["expression"], activation) for c in policy.get("matchConditions", [])):
            continue
        denials += [v["message"] for v in policy["validations"] if not _cel(v["expression"], activation)]
    return denials


def _tenant_labels(tenant: list[dict[str, Any]]) -> dict[str, str]:
    (ns,) = [d for d in tenant if d["kind"] == "Namespace"]
    return ns["metadata"]["labels"]


def test_policies_are_bound(platform):
    policies = {p["metadata"]["name"] for p in platform if p["kind"] == "ValidatingAdmissionPolicy"}
    bound = [b["spec"]["policyName"] for b in platform if b["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert sorted(bound) == sorted(policies) == ["raytune-priorityclasses", "raytune-tenant-rayjobs"]
    for policy in (p for p in platform if p["kind"] == "ValidatingAdmissionPolicy"):
        assert policy["spec"]["failurePolicy"] == "Fail"


def test_our_rayjob_is_admitted(platform, tenant):
    (job,) = [d for d in tenant if d["kind"] == "RayJob"]
    assert admit(platform, job, "rayjobs", _tenant_labels(tenant)) == []


CONFUSED_DEPUTIES = [
    ("K8sJobMode", [{"op": "replace", "path": "/spec/submissionMode", "value": "K8sJobMode"}], "HTTPMode"),
    ("default mode", [{"op": "remove", "path": "/spec/submissionMode"}], "HTTPMode"),
    ("submitterPodTemplate", [{"op": "add", "path": "/spec/submitterPodTemplate",
                               "value": {"spec": {"serviceAccountName": "raytune-head", "containers": []}}}],
     "submitterPodTemplate"),
    ("submitterConfig", [{"op": "add", "path": "/spec/submitterConfig", "value": {"backoffLimit": 3}}], "submitterConfig"),
    ("inline rayClusterSpec", [{"op": "add", "path": "/spec/rayClusterSpec", "value": {"headGroupSpec": {}}}],
     "rayClusterSpec"),
    ("no clusterSelector", [{"op": "remove", "path": "/spec/clusterSelector"}], "clusterSelector"),
]


@pytest.mark.parametrize("ops,message", [(o, m) for _, o, m in CONFUSED_DEPUTIES], ids=[i for i, _, _ in CONFUSED_DEPUTIES])
def test_tenant_rayjobs_that_would_borrow_the_operators_rights_are_refused(ops, message, platform, tenant):
    (job,) = [d for d in tenant if d["kind"] == "RayJob"]
    denials = admit(platform, cs.edited(job, ops), "rayjobs", _tenant_labels(tenant))
    assert any(message in d for d in denials), denials
    # Turning an admitted RayJob into one is refused as well.
    assert admit(platform, cs.edited(job, ops), "rayjobs", _tenant_labels(tenant), "UPDATE", old=job)


def test_operator_can_still_update_a_rayjob_whose_spec_is_unchanged(platform, tenant):
    """Adding or removing the operator's finalizer changes metadata only: not judged again."""
    (job,) = [d for d in tenant if d["kind"] == "RayJob"]
    legacy = cs.edited(job, [{"op": "replace", "path": "/spec/submissionMode", "value": "K8sJobMode"}])
    finalized = cs.edited(legacy, [{"op": "add", "path": "/metadata/finalizers", "value": ["ray.io/rayjob-finalizer"]}])
    assert admit(platform, finalized, "rayjobs", _tenant_labels(tenant), "UPDATE", old=legacy) == []


def test_rayjobs_outside_tenant_namespaces_are_not_judged(platform, tenant):
    (job,) = [d for d in tenant if d["kind"] == "RayJob"]
    other = cs.edited(job, [{"op": "replace", "path": "/spec/submissionMode", "value": "K8sJobMode"}])
    assert admit(platform, other, "rayjobs", {"kubernetes.io/metadata.name": "ml-team"}) == []


def _pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def test_raytune_priority_classes_only_in_tenant_namespaces(platform, tenant):
    (cluster,) = [d for d in tenant if d["kind"] == "RayCluster"]
    ray_pods = [cluster["spec"]["headGroupSpec"]["template"]["spec"]]
    ray_pods += [g["template"]["spec"] for g in cluster["spec"]["workerGroupSpecs"]]
    classes = {p["metadata"]["name"] for p in platform if p["kind"] == "PriorityClass"}
    elsewhere = {"kubernetes.io/metadata.name": "ml-team"}
    for spec in ray_pods:
        assert spec["priorityClassName"] in classes
        assert admit(platform, _pod(spec), "pods", _tenant_labels(tenant)) == []
        assert admit(platform, _pod(spec), "pods", elsewhere), "a raytune class outside a tenant namespace"
    for name in classes:
        assert admit(platform, _pod({"priorityClassName": name, "containers": []}), "pods", elsewhere), name
    assert admit(platform, _pod({"containers": []}), "pods", elsewhere) == []
    assert admit(platform, _pod({"priorityClassName": "system-cluster-critical", "containers": []}), "pods", elsewhere) == []
