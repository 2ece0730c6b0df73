"""Preloaded last by the forkserver launcher's fork server (hydra_plugins/lstm_cls_launcher): its quick exit.

When the sweep ends, the server exits. Python would then tear down torch and Lightning, ~1.6 s during which
the server still holds the command's stdout and stderr: `... | tee log`, or any caller reading the output to
its end, waits for it. The server holds nothing to save, so its exit is immediate instead.

Only in the fork server itself: imported anywhere else, this module does nothing. The jobs forked from the
server inherit the handler but never run it: multiprocessing ends every child with os._exit.
"""

import atexit
import os
import traceback


def in_fork_server() -> bool:
    """Whether this import runs inside multiprocessing.forkserver.main (the server preloading)."""
    return any(
        frame.name == "main" and frame.filename.endswith(os.path.join("multiprocessing", "forkserver.py"))
        for frame in traceback.extract_stack()
    )


if in_fork_server():
    atexit.register(os._exit, 0)  # registered after everything it preloads: run first at exit
