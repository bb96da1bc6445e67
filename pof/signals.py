"""SIGTERM, the signal `kill`, systemd, Docker and Slurm send first, stops a job as a cancel does.

The handler only sets a flag. A job that polls for a stop (the training loop before every step,
an analysis job between its units: `Run.cancel_requested` reads the flag) then stops at its next
step, marks its run "cancelled" and leaves the state `--resume` continues from; the command exits 3
(cancelled). A process that has not polled yet (still loading its data, or a command with no
run folder) is interrupted at once, as Ctrl-C does, and exits 3 as well. A second SIGTERM always
interrupts at once. SIGKILL cannot be caught: a killed job reads "failed" and resumes the same way;
so does one killed by a SIGTERM in the first instants of the interpreter, before the handler is
installed (the default action, exit 143).
"""

from __future__ import annotations

import signal
import sys

_term = False  # a SIGTERM arrived
_polled = False  # something in this process polls for a stop, so the flag will be seen


def stop_on_sigterm() -> None:
    """Install the handler (in the main thread of a command-line process), for SIGTERM and for
    SIGHUP (the terminal that started the job was closed): both stop it as a cancel does."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup` asked to ignore it: keep that
            signal.signal(sig, _on_term)


def _on_term(signum, frame) -> None:
    global _term
    again, _term = _term, True  # set even when raising: code that swallows the interrupt (seen
    if again or not _polled:  # while a model loads) must not lose the request; the poll sees it
        raise KeyboardInterrupt("terminated (SIGTERM)")


def terminated() -> bool:
    """Whether a SIGTERM (or SIGHUP) asked this process to stop; calling it says someone polls."""
    global _polled
    _polled = True
    return _term


def run_entry(load_main) -> None:
    """A command-line entry (`python -m pof`, `python -m analysis`): the handler is installed
    before `load_main()` imports the command line (and torch with it), so a SIGTERM while it
    imports exits 3 too; Ctrl-C or SIGTERM before a command took charge started nothing."""
    stop_on_sigterm()
    try:
        code = load_main()()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 3
    sys.exit(code)
