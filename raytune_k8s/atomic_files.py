"""Files a resume reads are replaced whole, never left half-written by a kill.

:func:`write_atomic` writes into a temporary file in the same folder, fsyncs it and renames it
over the target (``os.replace``): a reader sees the old file or the new one, whatever moment the
writer dies at. Our own files (the spec, the summary, the searcher's snapshots) go through it.

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

import fnmatch
import os
import shutil
import threading
from pathlib import Path
from typing import Any

#: Tune's experiment-level state files, in the experiment directory: fsynced, previous kept.
STATE_PATTERNS = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "callback-states-*.pkl")
PREVIOUS_SUFFIX = ".prev"
_TMP_MARK = ".rtk8s-tmp-"


def previous_path(path: Path) -> Path:
    """Where the version of ``path`` before the last sync is kept."""
    return path.with_name(f".{path.name}{PREVIOUS_SUFFIX}")


def is_state_file(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in STATE_PATTERNS)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{threading.get_ident()}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, fsync: bool = True) -> None:
    """Replace ``path`` by ``data`` whole: a temporary file beside it, fsynced, renamed over it."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)


def copy_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, fsync: bool, keep_previous: bool = False) -> bool:
    """Copy ``src`` over ``dst`` whole (False if ``dst`` already has its size and mtime: unchanged).
    ``keep_previous`` first links the current ``dst`` as :func:`previous_path`."""
    src, dst = Path(src), Path(dst)
    st = os.stat(src)
    try:
        old = os.stat(dst)
        if old.st_size == st.st_size and old.st_mtime_ns == st.st_mtime_ns:
            return False
    except FileNotFoundError:
        old = None
    tmp = _tmp_path(dst)
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            if fsync:
                os.fsync(fout.fileno())
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        if keep_previous and old is not None:
            prev = previous_path(dst)
            prev.unlink(missing_ok=True)
            os.link(dst, prev)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


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
            if _TMP_MARK in name:
                continue
            state = rel == "." and is_state_file(name)
            try:
                if copy_atomic(Path(root, name), target / name, fsync=state, keep_previous=state):
                    changed += 1
                    top_changed = top_changed or rel == "."
            except FileNotFoundError:
                continue
    if top_changed:
        _fsync_dir(Path(dest_dir))
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
    from .tune_internals import STORAGE_UPLOAD, storage_module

    if _patch is None:
        try:
            _original_upload = getattr(storage_module(), STORAGE_UPLOAD)
        except (ImportError, AttributeError):
            _original_upload = None
        _patch = ConfinedPatch(storage_module, {STORAGE_UPLOAD: _atomic_upload},
                               "raytune_k8s: Tune's experiment sync is not made atomic in this Ray ({reason}); a resume "
                               "still checks every state file it reads")
    return _patch.applied()
