"""Every command the README and docs/ show works as written, and every link between them resolves.

Each fenced ``bash``, ``sh``, ``console`` and ``python`` block of README.md and docs/*.md is either
run here (from the repository root, with a temporary ``RAYTUNE_K8S_STORAGE``: cheap blocks only,
``validate``, ``--help``, snippets that import and check) or listed in :data:`SKIP` with the reason
it is not (a full run, a cluster, Kubernetes, an install). A block that is neither listed nor
runnable fails, and so does a listed block that no longer exists. Output samples belong in
``text`` blocks, which are not run. Besides: every experiment shown in a ``yaml`` block
validates, every relative link (and its ``#anchor``) resolves, and the README's command list
names every subcommand and flag of the CLI.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RUN_LANGS = {"bash", "sh", "console", "python"}
#: Seconds one runnable block may take: the cheap ones take a few; anything longer belongs in SKIP.
BLOCK_TIMEOUT_S = 60

FULL_RUN = "a full run: see tests/test_mnist.py, tests/test_experiments.py"

#: Blocks not run here, keyed by "<file>: <first line of the block>", with the reason.
SKIP: dict[str, str] = {
    "README.md: # 1. install (pinned by constraints.txt), then run the main job: the Katib paper's MXNet MNIST":
        "an install and a full run (the main job: tests/test_mnist.py runs it smaller); .ci/run runs command 2",
    "README.md: import raytune_k8s":
        FULL_RUN + " (raytune_k8s.run of the MNIST experiment)",
    "README.md: ray start --head                                    # writes the token to ~/.ray/auth_token":
        "starts a Ray head and submits a full run: tests/test_cluster_usage.py does exactly this",
    "docs/running.md: import raytune_k8s":
        FULL_RUN + " (run and resume; yaml_text and MyTuneSearcher are placeholders)",
    "docs/report.md: raytune-k8s report ~/ray_results/mnist-mxnet-random        # -> .../mnist-mxnet-random/report.html":
        "needs a finished experiment directory: tests/test_report.py writes and renders reports",
    "docs/report.md: import raytune_k8s":
        "needs a finished experiment directory: tests/test_report.py",
    "docs/report.md: raytune-k8s run examples/mnist-mxnet-random.yaml --optuna-storage sqlite:///mnist.db &":
        "a full run and a dashboard server: tests/test_report.py checks the mirror and optuna-dashboard's API",
    "docs/autoscaling.md: raytune-k8s cluster up --worker-cpus 1 --max-workers 6 --pod-start-s 0   # prints the address and an export line":
        "starts a simulated autoscaling cluster and a run on it: tests/test_autoscaling.py, tests/test_processes.py",
    "docs/development.md: bash scripts/setup-dev.sh && python -m pytest tests -q":
        "an install and the whole suite (.ci/run runs it)",
    "docs/development.md: python -m pytest tests -q -m benchmark_smoke":
        "the benchmarks' smoke runs, about 7 minutes: tests/test_benchmarks_smoke.py",
    "docs/development.md: RAYTUNE_K8S_REQUIRE_CRDS=1 python -m pytest tests/test_cluster_manifests.py -q":
        "the cluster manifest suite (kubectl, the KubeRay CRDs): tests/test_cluster_manifests.py",
    "docs/nas.md: raytune-k8s validate examples/nas-darts.yaml && raytune-k8s validate examples/nas-enas.yaml":
        "imports PyTorch for the NAS spaces (two processes of several seconds each); "
        "tests/test_spec_errors.py validates every example, tests/test_nas.py runs DARTS and ENAS",
    "docs/development.md: python -m pytest tests/test_docs_examples.py -q":
        "this test itself",
}


@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository
    line: int  # of the opening fence
    lang: str
    text: str

    @property
    def key(self) -> str:
        first = next((line.strip() for line in self.text.splitlines() if line.strip()), "")
        return f"{self.file}: {first}"


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<lang>[\w+-]*)\s*$")


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown file (indented ones, inside list items, too)."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m["indent"]), m["fence"], m["lang"].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        assert j < len(lines), f"{path.name}:{i + 1}: a code block that is never closed"
        found.append(Block(str(path.relative_to(REPO)), i + 1, lang, "\n".join(body) + "\n"))
        i = j + 1
    return found


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in blocks(path)]


def runnable_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.lang in RUN_LANGS and b.key not in SKIP]


def outside_code(path: Path) -> str:
    """The file's text with every fenced block and inline code span blanked out."""
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYTUNE_K8S_VERBOSE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["RAYTUNE_K8S_STORAGE"] = str(tmp_path / "experiments")
    env["RAYTUNE_K8S_CLUSTER_STATE"] = str(tmp_path / "cluster.json")
    return env


def _run(argv: list[str], tmp_path: Path, what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(argv, cwd=REPO, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        pytest.fail(f"{what} took over {BLOCK_TIMEOUT_S} s: a block that cheap runs cannot show belongs in SKIP "
                    f"with its reason\n{out[-2000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, None)


# ------------------------------------------------------------------------------------------ blocks

def test_every_block_is_run_or_listed_and_every_listed_block_exists():
    found = all_blocks()
    keys = [b.key for b in found if b.lang in RUN_LANGS]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"blocks with the same file and first line cannot be told apart in SKIP: {duplicates}"
    stale = sorted(set(SKIP) - set(keys))
    assert not stale, f"SKIP lists blocks that no longer exist (remove them): {stale}"
    assert all(reason.strip() for reason in SKIP.values()), "every SKIP entry says why"
    unknown = sorted({b.lang for b in found} - RUN_LANGS - {"text", "yaml", "json", ""})
    assert not unknown, f"code blocks in languages this test neither runs nor knows as output: {unknown}"
    assert not [b for b in found if b.lang == ""], \
        "a code block without a language: mark output as ```text, commands as ```bash"
    assert len(runnable_blocks()) >= 5, "the cheap examples are run here"


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: f"{b.file}:{b.line}")
def test_block_runs_as_written(block: Block, tmp_path):
    if block.lang == "python":
        script = tmp_path / "block.py"
        script.write_text(block.text)
        argv = [sys.executable, str(script)]
    else:
        text = block.text
        if block.lang == "console":
            text = "\n".join(line[2:] for line in text.splitlines() if line.startswith("$ ")) + "\n"
        argv = ["bash", "-e", "-o", "pipefail", "-c", text]
    proc = _run(argv, tmp_path, f"{block.key} ({block.file}:{block.line})")
    assert proc.returncode == 0, (f"{block.file}:{block.line} exited {proc.returncode}; fix it, or list it in SKIP "
                                  f"with its reason:\n{block.text}\n--- output ---\n{proc.stdout[-3000:]}")


def test_experiments_shown_in_yaml_blocks_validate(tmp_path):
    """A yaml block that is an experiment (a short-format spec, a Katib Experiment or an OptimizationJob) validates."""
    paths = []
    for n, block in enumerate(b for b in all_blocks() if b.lang == "yaml"):
        doc = yaml.safe_load(block.text)
        if isinstance(doc, dict) and ("objective" in doc or doc.get("kind") in ("Experiment", "OptimizationJob")):
            path = tmp_path / f"{n}-{Path(block.file).stem}-{block.line}.yaml"
            path.write_text(block.text)
            paths.append(path)
    assert paths, "the README and docs show experiment files"
    code = ("import sys\nfrom raytune_k8s.cli import main\n"
            "sys.exit(max(main(['validate', p]) for p in sys.argv[1:]))\n")
    proc = _run([sys.executable, "-c", code, *map(str, paths)], tmp_path, "validating the yaml blocks")
    assert proc.returncode == 0, proc.stdout[-3000:]


# ------------------------------------------------------------------------------------------- links

def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", outside_code(path), re.M)}


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?: \"[^\"]*\")?\)")


def test_every_relative_link_resolves():
    broken = []
    checked = 0
    for path in doc_files():
        for target in _LINK.findall(outside_code(path)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            checked += 1
            if not dest.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{path.relative_to(REPO)}: {target} (no heading #{anchor} in {dest.name})")
    assert checked > 20
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = [p.name for p in (REPO / "docs").glob("*.md") if f"(docs/{p.name})" not in readme]
    assert not missing, f"docs pages the README does not link: {missing}"


# ---------------------------------------------------------------------------------------- commands

def _commands(parser: argparse.ArgumentParser, prefix: str) -> dict[str, list[str]]:
    """'raytune-k8s run' -> its option strings, for every (nested) subcommand."""
    found: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{prefix} {name}"))
    if not found or any(a.option_strings for a in parser._actions if not isinstance(a, argparse._HelpAction)):
        found[prefix] = [s for a in parser._actions if not isinstance(a, argparse._HelpAction) for s in a.option_strings]
    return found


def test_the_readme_lists_every_subcommand_and_flag():
    from raytune_k8s.cli import _parser

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Commands"):]
    section = section[: section.index("\n## ", 1)]
    missing = []
    for command, options in _commands(_parser(), "raytune-k8s").items():
        lines = [line for line in section.splitlines() if line.startswith(command + " ") or line == command]
        if not lines:
            missing.append(command)
            continue
        # the command's entry: its first line and the indented lines that continue it
        start = section.splitlines().index(lines[0])
        entry = [lines[0]]
        for line in section.splitlines()[start + 1:]:
            if not line.startswith(" "):
                break
            entry.append(line)
        text = " ".join(entry)
        missing += [f"{command} {opt}" for opt in options if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text)]
    assert not missing, f"README's Commands list lacks: {missing}"
