"""Telling an interrupted Tune run from a finished one; SIGTERM stops a run as SIGINT does.

On Ctrl-C / SIGINT (or SIGUSR1) Tune's handler, installed for the run, ends ``fit()`` normally
after saving the experiment, and puts back the SIGINT handler it found. The trials alone cannot
tell the two apart when the signal lands between trials (every trial so far has finished). So a
marker handler goes in first: if it is back in place after a normal return, the run was stopped.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator


@dataclass
class RunOutcome:
    interrupted: bool = False


@contextmanager
def watch_for_interrupt() -> Iterator[RunOutcome]:
    """Sets ``interrupted`` when the block ends, and puts back the SIGINT handler that was
    there before (Tune leaves its own installed after a run)."""
    outcome = RunOutcome()
    if threading.current_thread() is not threading.main_thread():
        yield outcome  # signals only reach the main thread; Tune does not catch them there either
        return
    previous = signal.getsignal(signal.SIGINT)

    def marker(signum: int, frame: Any) -> None:
        # Called only where Tune did not install its own handler: do what was there before.
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def terminate(signum: int, frame: Any) -> None:
        # `ray job stop` and Kubernetes stop a driver with SIGTERM: stop the way Ctrl-C does,
        # so Tune saves the experiment and the summary is written.
        os.kill(os.getpid(), signal.SIGINT)

    signal.signal(signal.SIGINT, marker)
    previous_term = signal.signal(signal.SIGTERM, terminate)
    try:
        yield outcome
    except KeyboardInterrupt:
        outcome.interrupted = True
        raise
    else:
        outcome.interrupted = signal.getsignal(signal.SIGINT) is marker
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
