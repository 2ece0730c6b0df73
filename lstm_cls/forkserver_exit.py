"""The forkserver launcher's fork server (hydra_plugins/lstm_cls_launcher): its start, its quiet Ctrl-C and
its quick exit.

Ctrl-C while the server still imports torch and Lightning (~5 s): the terminal sends it to every process of
the command, the server included. The command reports it ("interrupted", exit 130); the server ends at once
and without a word (Python would print a KeyboardInterrupt traceback from inside an import). `start` starts
the server with Ctrl-C blocked, so none is lost or seen before this module's handler is in place; once the
server serves, multiprocessing ignores Ctrl-C in it, and each job puts back Python's own (a job stops as a
run does).

When the sweep ends, the server exits. Python would then tear down torch and Lightning, ~1 s during which the
server still holds the command's stdout and stderr: `... | tee log`, or any caller reading the output to its
end, waits for it. The server holds nothing to save, so its exit is immediate instead (measured: as quick
registered before the modules it preloads as after them).

The server imports this module first of those it preloads (the only code a fork server runs for its
caller). `start` names the server in its environment (ROLE), and only there does the import install the
handlers; imported anywhere else, this module does nothing. The server takes the name out of its
environment again, and the jobs forked from it inherit the exit handler but never run it:
multiprocessing ends every child with os._exit.
"""

import atexit
import os
import signal

ROLE = "LSTM_CLS_FORK_SERVER"  # in the fork server's environment alone, set by `start`


def in_fork_server() -> bool:  # the fork server `start` started, still preloading
    return os.environ.get(ROLE) == "1"


def quiet_exit(signum: int, frame: object) -> None:
    os._exit(128 + signum)  # no unwinding: a half-done import must not surface as a traceback


def serve_quietly() -> None:
    """In the fork server, as it imports this module: the quiet Ctrl-C and the immediate exit."""
    del os.environ[ROLE]  # not for the jobs it forks, nor anything they start
    atexit.register(os._exit, 0)
    signal.signal(signal.SIGINT, quiet_exit)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # one held back meanwhile arrives now


def start() -> None:
    """Start multiprocessing's fork server (the context's preload set, this module first), named as such in
    its environment and with Ctrl-C held back (blocked, not lost) until `serve_quietly` has put in its quiet
    handler. The resource tracker starts first: its own start unblocks the signals it blocks. (POSIX only,
    as the fork server is: pthread_sigmask is there.)"""
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    os.environ[ROLE] = "1"
    try:
        forkserver.ensure_running()  # the new process inherits the blocked signal and the name
    finally:
        del os.environ[ROLE]
        signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a Ctrl-C meanwhile arrives here now


if in_fork_server():
    serve_quietly()
