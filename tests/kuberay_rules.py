"""Our offline checks of the rules the KubeRay 1.7.0 operator applies to a RayCluster or RayJob
before it acts on it.

The CRD schema does not hold these rules: the operator checks them when it reconciles, and a
RayJob that breaks one ends in ``JobDeploymentStatus: ValidationFailed`` (a RayCluster gets a
warning event and is not reconciled). They were read from KubeRay v1.7.0's operator source
(``ray-operator/controllers/ray/utils/validation.go``, ``pkg/features``) and written down here
independently, for the fields our manifests use or could plausibly use. Each check returns
messages; an empty list means the operator would accept the object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

KUBERAY_VERSION = "1.7.0"

# Feature gates of the 1.7.0 operator when the Helm values do not set them.
DEFAULT_FEATURE_GATES = {
    "RayClusterStatusConditions": True,
    "RayJobDeletionPolicy": True,
    "RayMultiHostIndexing": True,
    "RayServiceIncrementalUpgrade": True,
    "RayCronJob": False,
    "SidecarSubmitterRestart": False,
    "RayClusterNetworkPolicy": False,
    "GCSFaultToleranceEmbeddedStorage": False,
    "RayClusterMTLS": False,
    "RayClusterHistoryServer": False,
    "KubernetesWAS": False,
}

MAX_RAYCLUSTER_NAME = 53
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6  # room for the suffix of a cluster the job would create
CLUSTER_SELECTOR_KEY = "ray.io/cluster"
FT_ANNOTATION = "ray.io/ft-enabled"
EXTERNAL_STORAGE_NS_ANNOTATION = "ray.io/external-storage-namespace"
GCS_STORAGE_VOLUME, GCS_STORAGE_MOUNT = "gcs-storage", "/data/gcs"
RAY_START_RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def feature_gates(helm_values: Mapping[str, Any] | None = None) -> dict[str, bool]:
    """The operator's feature gates for these chart values (``featureGates`` replaces the list)."""
    gates = dict(DEFAULT_FEATURE_GATES)
    if helm_values and helm_values.get("featureGates") is not None:
        gates = {name: False for name in gates}
        gates.update({g["name"]: bool(g["enabled"]) for g in helm_values["featureGates"]})
    return gates


def _version(text: str) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x or 0) for x in match.groups()) if match else None


def _env(container: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def _name_errors(kind: str, name: str, limit: int) -> list[str]:
    errors = []
    if len(name) > limit:
        errors.append(f"{kind} name should be no more than {limit} characters")
    if not _DNS1035.fullmatch(name) or len(name) > 63:
        errors.append(f"{kind} name {name!r} should be a valid DNS-1035 label")
    return errors


def _qualified_name_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return bool(_LABEL_NAME.fullmatch(name)) and len(name) <= 63 and (not prefix or len(prefix) <= 253)


# --------------------------------------------------------------------------- RayCluster


def raycluster_errors(cluster: Mapping[str, Any], gates: Mapping[str, bool] = DEFAULT_FEATURE_GATES) -> list[str]:
    """What the operator would reject in a RayCluster (metadata and spec)."""
    meta = cluster.get("metadata", {})
    errors = _name_errors("RayCluster", meta.get("name", ""), MAX_RAYCLUSTER_NAME)
    errors += cluster_spec_errors(cluster.get("spec", {}), meta.get("annotations") or {}, gates)
    upgrade = (cluster.get("spec", {}).get("upgradeStrategy") or {}).get("type")
    if upgrade is not None and upgrade not in ("Recreate", "None"):
        errors.append(f"upgradeStrategy.type {upgrade!r} is not Recreate or None")
    return errors


def cluster_spec_errors(spec: Mapping[str, Any], annotations: Mapping[str, str],
                        gates: Mapping[str, bool] = DEFAULT_FEATURE_GATES) -> list[str]:
    """The RayClusterSpec rules (also applied to a RayJob's inline rayClusterSpec)."""
    errors: list[str] = []
    head = spec.get("headGroupSpec", {})
    head_pod = head.get("template", {}).get("spec", {})
    if not head_pod.get("containers"):
        return ["headGroupSpec should have at least one container"]
    ray_head = head_pod["containers"][0]
    head_env = _env(ray_head)
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    options = spec.get("autoscalerOptions") or {}
    # Autoscaler v2 as the operator tells it: by autoscalerOptions.version for the restart rules,
    # by that or the head's RAY_enable_autoscaler_v2 for the per-group fields.
    v2_version = options.get("version") == "v2"
    v2 = v2_version or head_env.get("RAY_enable_autoscaler_v2", {}).get("value") in ("1", "true")

    groups = [("Head", head)] + [(g.get("groupName", "?"), g) for g in spec.get("workerGroupSpecs") or []]
    for name, group in groups:
        params = group.get("rayStartParams") or {}
        if any(params.get(p) for p in RAY_START_RESOURCE_PARAMS) and group.get("resources"):
            errors.append(f"{name} group: resources set both in rayStartParams and in resources")
        if "labels" in params:
            errors.append(f"{name} group: rayStartParams['labels'] is not supported, use labels")
        for key, value in (group.get("labels") or {}).items():
            if not _qualified_name_ok(key) or not _LABEL_VALUE.fullmatch(str(value)) or len(str(value)) > 63:
                errors.append(f"{name} group: invalid label {key}={value}")

    for group in spec.get("workerGroupSpecs") or []:
        name = group.get("groupName", "?")
        pod = group.get("template", {}).get("spec", {})
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        if not pod.get("containers"):
            errors.append(f"worker group {name} should have at least one container")
        if not autoscaling and (low is None or high is None):
            errors.append(f"worker group {name} must set minReplicas and maxReplicas without autoscaling")
        if (low is not None and low < 0) or (high is not None and high < 0):
            errors.append(f"worker group {name} has negative min/maxReplicas")
        if low is not None and high is not None and low > high:
            errors.append(f"worker group {name} has minReplicas {low} > maxReplicas {high}")
        idle = group.get("idleTimeoutSeconds")
        if idle is not None and (idle < 0 or not v2):
            errors.append(f"worker group {name}: idleTimeoutSeconds needs autoscaler v2 and must be >= 0")
        if group.get("priority"):
            if not v2 or (_version(spec.get("rayVersion", "")) or (0,)) < (2, 56, 0):
                errors.append(f"worker group {name}: priority needs autoscaler v2 and Ray >= 2.56.0")
        if group.get("suspend"):
            if not gates.get("RayJobDeletionPolicy"):
                errors.append(f"worker group {name} can be suspended only with the RayJobDeletionPolicy gate")
            if autoscaling:
                errors.append(f"worker group {name} cannot be suspended with the autoscaler enabled")
        if autoscaling and v2_version and pod.get("restartPolicy", "Never") != "Never":
            errors.append(f"restartPolicy of worker group {name} must be Never or unset with autoscaler v2")

    errors += _gcs_ft_errors(spec, head, ray_head, head_pod, annotations, gates)

    if not autoscaling and head_env.get("RAY_enable_autoscaler_v2", {}).get("value") in ("1", "true"):
        errors.append("RAY_enable_autoscaler_v2 is set on the head but enableInTreeAutoscaling is false")
    if autoscaling and options.get("version") and "RAY_enable_autoscaler_v2" in head_env:
        errors.append("both autoscalerOptions.version and the head's RAY_enable_autoscaler_v2 are set")
    if autoscaling and v2_version and head_pod.get("restartPolicy", "Never") != "Never":
        errors.append("restartPolicy of the head must be Never or unset with autoscaler v2")
    if (options.get("idleTimeoutSeconds") or 0) < 0:
        errors.append("autoscalerOptions.idleTimeoutSeconds must be non-negative")
    if "KUBERAY_GEN_AUTOSCALER_START_CMD" in _env(options):
        errors.append("autoscalerOptions.env must not set KUBERAY_GEN_AUTOSCALER_START_CMD")

    auth = spec.get("authOptions") or {}
    if auth.get("mode") == "token":
        version = _version(spec.get("rayVersion", ""))
        if version is None or version < (2, 52, 0):
            errors.append("authOptions.mode token needs rayVersion >= 2.52.0")
        if auth.get("enableK8sTokenAuth"):
            if version is None or version < (2, 55, 0):
                errors.append("authOptions.enableK8sTokenAuth needs rayVersion >= 2.55.0")
            if auth.get("secretName"):
                errors.append("authOptions.enableK8sTokenAuth and authOptions.secretName are both set")
    elif auth.get("enableK8sTokenAuth"):
        errors.append("authOptions.enableK8sTokenAuth needs authOptions.mode token")

    for field, gate in (("networkPolicy", "RayClusterNetworkPolicy"), ("tlsOptions", "RayClusterMTLS"),
                        ("historyServerOptions", "RayClusterHistoryServer")):
        if spec.get(field) is not None and not gates.get(gate):
            errors.append(f"spec.{field} needs the {gate} feature gate")
    return errors


def _gcs_ft_errors(spec: Mapping[str, Any], head: Mapping[str, Any], ray_head: Mapping[str, Any],
                   head_pod: Mapping[str, Any], annotations: Mapping[str, str],
                   gates: Mapping[str, bool]) -> list[str]:
    errors = []
    ft = spec.get("gcsFaultToleranceOptions")
    env = _env(ray_head)
    params = head.get("rayStartParams") or {}
    if annotations.get(FT_ANNOTATION) and ft is not None:
        errors.append(f"{FT_ANNOTATION} annotation and gcsFaultToleranceOptions are both set")
    ft_on = ft is not None or str(annotations.get(FT_ANNOTATION, "")).lower() == "true"
    if not ft_on and "RAY_REDIS_ADDRESS" in env:
        errors.append("RAY_REDIS_ADDRESS enables GCS fault tolerance but gcsFaultToleranceOptions is not set")
    if params.get("redis-username") or "REDIS_USERNAME" in env:
        errors.append("redis username in rayStartParams/env: use gcsFaultToleranceOptions.redisUsername")
    if ft is None:
        return errors
    if params.get("redis-password") or "REDIS_PASSWORD" in env or "RAY_REDIS_ADDRESS" in env:
        errors.append("with gcsFaultToleranceOptions, Redis settings belong in gcsFaultToleranceOptions")
    if annotations.get(EXTERNAL_STORAGE_NS_ANNOTATION):
        errors.append(f"with gcsFaultToleranceOptions, use externalStorageNamespace, not {EXTERNAL_STORAGE_NS_ANNOTATION}")
    storage = ft.get("storage")
    if ft.get("backend", "redis") == "rocksdb":
        if not gates.get("GCSFaultToleranceEmbeddedStorage"):
            errors.append("backend rocksdb needs the GCSFaultToleranceEmbeddedStorage feature gate")
        for field in ("redisAddress", "redisUsername", "redisPassword", "externalStorageNamespace"):
            if ft.get(field):
                errors.append(f"gcsFaultToleranceOptions.{field} cannot be set with backend rocksdb")
        if storage and storage.get("claimName") and any(storage.get(f) for f in ("size", "storageClassName", "accessModes")):
            errors.append("gcsFaultToleranceOptions.storage.claimName excludes size/storageClassName/accessModes")
        if "RAY_gcs_storage" in env or "RAY_gcs_storage_path" in env:
            errors.append("RAY_gcs_storage(_path) are set by the operator with backend rocksdb")
        mounts = ray_head.get("volumeMounts") or []
        if any(m.get("name") == GCS_STORAGE_VOLUME or m.get("mountPath") == GCS_STORAGE_MOUNT for m in mounts) \
                or any(v.get("name") == GCS_STORAGE_VOLUME for v in head_pod.get("volumes") or []):
            errors.append(f"volume {GCS_STORAGE_VOLUME} / {GCS_STORAGE_MOUNT} is the operator's with backend rocksdb")
    elif storage is not None:
        errors.append("gcsFaultToleranceOptions.storage only applies to backend rocksdb")
    return errors


# --------------------------------------------------------------------------- RayJob


def rayjob_errors(job: Mapping[str, Any], gates: Mapping[str, bool] = DEFAULT_FEATURE_GATES) -> list[str]:
    """What the operator would reject in a RayJob (it would end in ValidationFailed)."""
    errors = _name_errors("RayJob", job.get("metadata", {}).get("name", ""), MAX_RAYJOB_NAME)
    spec = job.get("spec", {})
    mode = spec.get("submissionMode", "K8sJobMode")
    selector = spec.get("clusterSelector") or {}
    shutdown = bool(spec.get("shutdownAfterJobFinishes"))
    backoff = spec.get("backoffLimit")

    if spec.get("suspend") and not shutdown:
        errors.append("a RayJob with shutdownAfterJobFinishes false cannot be suspended")
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    if ttl < 0:
        errors.append("ttlSecondsAfterFinished must be non-negative")
    if ttl > 0 and not shutdown:
        errors.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes")
    errors += _deletion_errors(spec, bool(selector), shutdown, gates)

    if selector:
        if spec.get("suspend"):
            errors.append("clusterSelector mode does not support suspend")
        if not selector.get(CLUSTER_SELECTOR_KEY):
            errors.append(f"clusterSelector must name the cluster with {CLUSTER_SELECTOR_KEY}")
        if mode == "SidecarMode":
            errors.append("clusterSelector is not supported in SidecarMode")
        if backoff is not None and backoff > 0:
            errors.append("BackoffLimit is incompatible with ClusterSelector mode")
    elif spec.get("rayClusterSpec") is None:
        errors.append("one of rayClusterSpec or clusterSelector must be set")
    if mode == "InteractiveMode" and backoff is not None and backoff > 0:
        errors.append("BackoffLimit is incompatible with InteractiveMode")
    if mode == "SidecarMode":
        for field in ("submitterPodTemplate", "submitterConfig"):
            if spec.get(field) is not None:
                errors.append(f"SidecarMode does not support {field}")
    if spec.get("rayClusterSpec") is not None:
        if (spec["rayClusterSpec"].get("authOptions") or {}).get("enableK8sTokenAuth"):
            errors.append("K8s token auth is not supported for a RayJob's rayClusterSpec")
        errors += cluster_spec_errors(spec["rayClusterSpec"], job.get("metadata", {}).get("annotations") or {}, gates)

    try:
        runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "") or {}
        if not isinstance(runtime_env, dict):
            errors.append("runtimeEnvYAML must be a YAML mapping")
    except yaml.YAMLError as exc:
        errors.append(f"runtimeEnvYAML is not valid YAML: {exc}")
    for field in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if spec.get(field) is not None and spec[field] <= 0:
            errors.append(f"{field} must be a positive integer")
    if backoff is not None and backoff < 0:
        errors.append("backoffLimit must be non-negative")
    return errors


def _deletion_errors(spec: Mapping[str, Any], selector_mode: bool, shutdown: bool,
                     gates: Mapping[str, bool]) -> list[str]:
    strategy = spec.get("deletionStrategy")
    if strategy is None:
        return []
    if not gates.get("RayJobDeletionPolicy"):
        return ["deletionStrategy needs the RayJobDeletionPolicy feature gate"]
    rules = strategy.get("deletionRules") or []
    legacy = [strategy.get("onSuccess"), strategy.get("onFailure")]
    if rules and shutdown:
        return ["shutdownAfterJobFinishes and deletionStrategy.deletionRules are mutually exclusive"]
    if rules and any(p is not None for p in legacy):
        return ["deletionStrategy: deletionRules and onSuccess/onFailure are mutually exclusive"]
    errors = []
    if rules:
        for i, rule in enumerate(rules):
            condition = rule.get("condition") or {}
            if ("jobStatus" in condition) == ("jobDeploymentStatus" in condition):
                errors.append(f"deletionRules[{i}]: exactly one of jobStatus and jobDeploymentStatus")
            if condition.get("ttlSeconds", 0) < 0:
                errors.append(f"deletionRules[{i}]: ttlSeconds must be non-negative")
            if selector_mode and rule.get("policy") in ("DeleteCluster", "DeleteWorkers"):
                errors.append(f"deletionRules[{i}]: {rule.get('policy')} is not supported with clusterSelector")
    elif all(p is not None for p in legacy):
        policies = [p.get("policy") for p in legacy]
        if None in policies:
            errors.append("deletionStrategy onSuccess/onFailure need a policy")
        if selector_mode and {"DeleteCluster", "DeleteWorkers"} & set(policies):
            errors.append("clusterSelector mode does not support DeleteCluster/DeleteWorkers")
        if shutdown and "DeleteNone" in policies:
            errors.append("shutdownAfterJobFinishes true with deletion policy DeleteNone")
    else:
        errors.append("deletionStrategy needs both onSuccess and onFailure, or deletionRules")
    return errors


def cross_object_errors(docs: list[Mapping[str, Any]]) -> list[str]:
    """Rules between objects of one namespace: a clusterSelector RayJob needs that RayCluster
    (else the operator only records a RayClusterNotFound event and waits)."""
    clusters = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs if d["kind"] == "RayCluster"}
    errors = []
    for job in (d for d in docs if d["kind"] == "RayJob"):
        name = (job["spec"].get("clusterSelector") or {}).get(CLUSTER_SELECTOR_KEY)
        if name and (job["metadata"].get("namespace"), name) not in clusters:
            errors.append(f"RayJob/{job['metadata']['name']}: no RayCluster {name} in its namespace")
    return errors
