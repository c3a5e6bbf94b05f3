"""Offline helpers for the tests of cluster/.

* ``render``: a kustomization rendered by the real ``kubectl kustomize`` (kustomize 5.x built
  into kubectl); a missing kubectl is an error, not a skip.
* ``crd_validator``: a jsonschema validator for a KubeRay kind, built from the CRD's
  ``openAPIV3Schema`` and made as strict as the API server: unknown fields are errors
  (structural schemas prune them; a typo would silently vanish), and
  ``x-kubernetes-int-or-string`` is spelled out as ``anyOf`` integer/string.
* ``edited``: a deep copy of a manifest with RFC 6902 operations applied (the jsonpatch library).
* ``parse_quantity`` and ``containers``: for the quota and security checks.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO_ROOT / "cluster"

CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}


#: Set (to 1) where the CRDs must be present: CI (.ci/run) sets it, so that their absence there
#: fails the run instead of skipping the schema checks.
REQUIRE_CRDS_ENV = "RAYTUNE_K8S_REQUIRE_CRDS"


def crds_dir() -> Path:
    """KubeRay CRDs: $RAYTUNE_K8S_CRDS_DIR, else ../shared/crds beside the repository."""
    env = os.environ.get("RAYTUNE_K8S_CRDS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "crds"


def missing_crds() -> str | None:
    """Why the KubeRay CRD schemas cannot be read (what is missing, and where to get it), or
    None when they are all there."""
    path = crds_dir()
    missing = [name for name in (*CRD_FILES.values(), "README.md") if not (path / name).is_file()]
    if not missing:
        return None
    return (f"KubeRay CRD schemas not found ({', '.join(missing)} in {path}): copy "
            "ray-operator/config/crd/bases/ray.io_rayclusters.yaml and ray.io_rayjobs.yaml of KubeRay "
            "v1.7.0 (github.com/ray-project/kuberay, tag v1.7.0) and a README.md naming v1.7.0 into a "
            "folder, and set RAYTUNE_K8S_CRDS_DIR to it")


def require_crds() -> Path:
    """The CRDs' folder; where they are missing, skip the calling test with :func:`missing_crds`,
    or fail it when ``$RAYTUNE_K8S_REQUIRE_CRDS`` is set (CI)."""
    import pytest

    why = missing_crds()
    if why is not None:
        if os.environ.get(REQUIRE_CRDS_ENV, "") not in ("", "0"):
            pytest.fail(f"{why} ({REQUIRE_CRDS_ENV} is set: they are required here)", pytrace=False)
        pytest.skip(why)
    return crds_dir()


# libyaml's loader when PyYAML has it: the CRDs are 40k lines.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_docs(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a file."""
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.load_all(f, Loader=_LOADER) if doc is not None]


# --------------------------------------------------------------------------- kustomize


def kubectl() -> str:
    """Path of kubectl; an AssertionError saying what to install when there is none."""
    path = shutil.which("kubectl")
    assert path, ("kubectl not found: the cluster/ tests render the overlays with `kubectl kustomize` "
                  "(kubectl >= 1.27 has kustomize 5 built in)")
    return path


@functools.cache
def _render_cached(kustomization_dir: str) -> str:
    proc = subprocess.run([kubectl(), "kustomize", kustomization_dir],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {kustomization_dir} failed:\n{proc.stderr}"
    return proc.stdout


def render(kustomization_dir: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize DIR`` renders (a fresh copy on every call)."""
    out = _render_cached(str(Path(kustomization_dir).resolve()))
    return [doc for doc in yaml.load_all(out, Loader=_LOADER) if doc]


def edited(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``doc`` with the RFC 6902 operations ``ops`` applied."""
    return jsonpatch.apply_patch(doc, ops, in_place=False)


# --------------------------------------------------------------------------- CRD schemas


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Turn a CRD openAPIV3Schema into a JSON schema that rejects what the API server drops.

    * ``x-kubernetes-int-or-string: true`` -> ``anyOf: [integer, string]`` (no ``type``);
    * ``nullable: true`` -> ``null`` added to the type;
    * an object with ``properties`` but no ``additionalProperties`` and no
      ``x-kubernetes-preserve-unknown-fields`` gets ``additionalProperties: false``: the API server
      prunes unknown fields there, so a misspelled field would be lost without a word.
    Other ``x-kubernetes-*`` keys are annotations jsonschema ignores; CEL rules
    (``x-kubernetes-validations``) are not evaluated here.
    """
    node = copy.deepcopy(schema)
    _structural_in_place(node)
    return node


def _structural_in_place(node: dict[str, Any]) -> None:
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    for sub in node.get("properties", {}).values():
        _structural_in_place(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            _structural_in_place(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in node.get(key, []):
            _structural_in_place(sub)


@functools.cache
def crd_validator(kind: str, version: str = "v1") -> jsonschema.protocols.Validator:
    """A validator for ``kind`` (RayCluster, RayJob) from the CRD in crds_dir()."""
    crd = load_docs(crds_dir() / CRD_FILES[kind])[0]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return jsonschema.Draft202012Validator(structural(served["schema"]["openAPIV3Schema"]))


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation of a RayCluster/RayJob, as 'path: message' lines."""
    validator = crd_validator(doc["kind"], doc["apiVersion"].rpartition("/")[2])
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


# --------------------------------------------------------------------------- pods


_SUFFIXES = {
    "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity ('500m', '4Gi', 2, '1.5') as a Decimal in base units."""
    text = str(value)
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(text)


def containers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every container a manifest will run: (where, container, its pod spec).

    Walks any pod template (``containers`` / ``initContainers`` lists), and yields a RayCluster's
    autoscaler sidecar (``spec.autoscalerOptions``), which KubeRay adds to the head pod (so its
    pod spec is the head's).
    """
    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        if isinstance(node, dict):
            for key in ("containers", "initContainers"):
                if isinstance(node.get(key), list):
                    for c in node[key]:
                        yield f"{where}.{key}[{c.get('name')}]", c, node
            for key, value in node.items():
                if key not in ("containers", "initContainers"):
                    yield from walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{where}[{i}]")

    name = f"{doc['kind']}/{doc['metadata']['name']}"
    yield from walk(doc.get("spec", {}), name)
    if doc["kind"] == "RayCluster" and doc["spec"].get("enableInTreeAutoscaling"):
        head_pod = doc["spec"]["headGroupSpec"]["template"]["spec"]
        yield f"{name}.autoscalerOptions", doc["spec"].get("autoscalerOptions", {}), head_pod
