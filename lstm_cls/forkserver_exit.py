"""Preloaded first by the forkserver launcher's fork server (hydra_plugins/lstm_cls_launcher): its quiet
Ctrl-C and its quick exit.

Ctrl-C while the server still imports torch and Lightning (~5 s): the terminal sends it to every process of
the command, the server included. The command reports it ("interrupted", exit 130); the server ends at once
and without a word (Python would print a KeyboardInterrupt traceback from inside an import). The launcher
starts the server with Ctrl-C blocked, so none is lost or seen before this handler is in place; once the
server serves, multiprocessing ignores Ctrl-C in it, and each job puts back Python's own (a job stops as a
run does).

When the sweep ends, the server exits. Python would then tear down torch and Lightning, ~1 s during which the
server still holds the command's stdout and stderr: `... | tee log`, or any caller reading the output to its
end, waits for it. The server holds nothing to save, so its exit is immediate instead (measured: as quick
registered before the modules it preloads as after them).

Only in the fork server itself: imported anywhere else, this module does nothing. The jobs forked from the
server inherit the exit handler but never run it: multiprocessing ends every child with os._exit.
"""

import atexit
import os
import signal
import traceback


def in_fork_server() -> bool:
    """Whether this import runs inside multiprocessing.forkserver.main (the server preloading)."""
    return any(
        frame.name == "main" and frame.filename.endswith(os.path.join("multiprocessing", "forkserver.py"))
        for frame in traceback.extract_stack()
    )


def quiet_exit(signum: int, frame: object) -> None:
    os._exit(128 + signum)  # no unwinding: a half-done import must not surface as a traceback


if in_fork_server():
    atexit.register(os._exit, 0)
    signal.signal(signal.SIGINT, quiet_exit)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # one held back meanwhile arrives now
