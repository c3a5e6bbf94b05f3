"""Files a resume reads are replaced whole, never left half-written by a kill.

Our own files go through :func:`raytune_k8s.files.write_atomic`; this module makes Tune's copy of
its own state as safe.

Tune writes its experiment state (``experiment_state-*.json``, ``search_gen_state-*.json``,
``searcher-state-*.pkl``, ``callback-states-*.pkl``) atomically into the driver's staging folder,
but then copies that folder to the experiment directory with ``pyarrow.fs.copy_files``, which
writes each file in place: a driver killed mid-copy (a lost head) left an empty
``experiment_state-*.json``, Tune failed to read it and silently started the experiment over.
:func:`atomic_experiment_sync`, open around ``fit()``, makes that copy (Tune's
``_upload_to_fs_path``, through :mod:`.tune_internals`, swapped by :mod:`.confined_patch`) copy
each changed file with :func:`copy_atomic`, for a local storage path (a PVC; an object store's
uploads are whole objects already). The experiment-level state files are fsynced and their
previous version is kept as ``.<name>.prev`` (what a resume falls back to if one is ever found
damaged, see :mod:`.recovery`); the trials' files (``result.json`` and Tune's loggers') are
renamed into place without an fsync, as a kill, not a power cut, is what they must survive (and
``journal.jsonl`` has every result anyway).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..files import TMP_MARK, copy_atomic, fsync_dir, is_state_file


def upload_tree_atomic(local_dir: str, dest_dir: str) -> int:
    """Copy the folder ``local_dir`` into ``dest_dir`` file by file with :func:`copy_atomic`;
    returns how many files changed. A file that vanishes meanwhile (Tune's own temporary
    files) is skipped."""
    changed, top_changed = 0, False
    for root, dirs, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        target = Path(dest_dir) if rel == "." else Path(dest_dir, rel)
        target.mkdir(parents=True, exist_ok=True)
        dirs.sort()
        for name in sorted(files):
            if TMP_MARK in name:
                continue
            state = rel == "." and is_state_file(name)
            try:
                if copy_atomic(Path(root, name), target / name, fsync=state, keep_previous=state):
                    changed += 1
                    top_changed = top_changed or rel == "."
            except FileNotFoundError:
                continue
    if top_changed:
        fsync_dir(Path(dest_dir))
    return changed


_patch: Any = None
_original_upload: Any = None


def _atomic_upload(local_path: str, fs: Any, fs_path: str, exclude: Any = None) -> None:
    """Tune's ``_upload_to_fs_path``, file by file and atomic for a local folder to local storage."""
    import pyarrow.fs

    if exclude or not isinstance(fs, pyarrow.fs.LocalFileSystem) or not os.path.isdir(local_path):
        return _original_upload(local_path, fs, fs_path, exclude=exclude)
    upload_tree_atomic(local_path, fs_path)
    return None


def atomic_experiment_sync() -> Any:
    """While open (around ``fit()``), Tune's copies of the staging folder to a local experiment
    directory are atomic file by file (see the module docstring)."""
    global _patch, _original_upload
    from .confined_patch import ConfinedPatch
    from .internals import STORAGE_UPLOAD, storage_module

    if _patch is None:
        try:
            _original_upload = getattr(storage_module(), STORAGE_UPLOAD)
        except (ImportError, AttributeError):
            _original_upload = None
        _patch = ConfinedPatch(storage_module, {STORAGE_UPLOAD: _atomic_upload},
                               "raytune_k8s: Tune's experiment sync is not made atomic in this Ray ({reason}); a resume "
                               "still checks every state file it reads")
    return _patch.applied()
