"""Files written whole, never left half-written by a kill.

:func:`write_atomic` writes into a temporary file in the same folder, fsyncs it and renames it
over the target (``os.replace``): a reader sees the old file or the new one, whatever moment the
writer dies at (:func:`atomic_writer` does the same for a file written piece by piece). Our own
files (the spec, the summary, the searcher's snapshots) go through it;
:func:`copy_atomic` copies a file the same way (Tune's experiment sync, :mod:`._tune.atomic_files`),
keeping the previous version of a state file (:func:`previous_path`) for a resume to fall back to.
A leaf: imports nothing of ours.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

#: Tune's experiment-level state files, in the experiment directory: fsynced, previous kept.
STATE_PATTERNS = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "callback-states-*.pkl")
PREVIOUS_SUFFIX = ".prev"
TMP_MARK = ".rtk8s-tmp-"


def previous_path(path: Path) -> Path:
    """Where the version of ``path`` before the last sync is kept."""
    return path.with_name(f".{path.name}{PREVIOUS_SUFFIX}")


def is_state_file(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in STATE_PATTERNS)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{threading.get_ident()}")


def fsync_dir(folder: Path) -> None:
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
    with atomic_writer(path, fsync=fsync) as f:
        f.write(data.encode() if isinstance(data, str) else data)


@contextmanager
def atomic_writer(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[BinaryIO]:
    """A file to write ``path`` through, piece by piece (a document too large to hold twice in
    memory): it replaces ``path`` whole when the block ends, as :func:`write_atomic` does, and
    not at all if the block raises."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


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
