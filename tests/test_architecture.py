"""The package's shape: its import graph has no circle and every import goes down the layers
that scripts/import_graph.py (and docs/architecture.md) state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_imports_go_down_the_layers_with_no_circle():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "import_graph.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "total" in proc.stdout


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path):
    """The check has teeth: a copy of the package with one upward import fails it."""
    import shutil

    shutil.copytree(REPO / "raytune_k8s", tmp_path / "raytune_k8s")
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    quota = tmp_path / "raytune_k8s" / "scaling" / "quota.py"
    quota.write_text(quota.read_text() + "\nfrom .request import trial_bundles  # noqa\n")
    spec = tmp_path / "raytune_k8s" / "spec" / "errors.py"
    spec.write_text(spec.read_text() + "\nfrom ..experiment import runner  # noqa\n")
    proc = subprocess.run([sys.executable, str(tmp_path / "scripts" / "import_graph.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    circles = [line for line in proc.stderr.splitlines() if line.startswith("circle: ")]
    assert any("raytune_k8s.scaling.quota" in c and "raytune_k8s.scaling.request" in c for c in circles), proc.stderr
    assert "upward: raytune_k8s/spec/errors.py" in proc.stderr and "spec imports raytune_k8s.experiment.runner" in proc.stderr


def test_no_test_module_imports_another():
    import ast

    for path in (REPO / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level and node.module and node.module.startswith("test_"):
                raise AssertionError(f"{path.name} imports {node.module}: shared helpers belong in conftest.py/helpers.py")
            if isinstance(node, ast.Import) and any(a.name.startswith("test_") for a in node.names):
                raise AssertionError(f"{path.name} imports another test module")
