"""Imported once by the ``multiprocessing`` fork server that starts process workers' children
(see :func:`streamyolo.workers.process.start_fork_server`): it imports what a child needs
(Ultralytics, torch, torchvision, OpenVINO where installed: about 2.5 s on a small CPU), so that
each child, forked from the server, starts with them in memory (shared copy-on-write) instead of
importing them again; a child started again after a crash is up in well under a second.

It also makes the server ignore SIGINT *before* the server saves its signal handlers, which it
restores in every child it forks: a terminal's Ctrl-C reaches the whole process group, and a
child must leave it to the main process from its first instruction on. Nothing here starts a
thread of ours or touches CUDA: the server forks.

Imported anywhere else (a documentation tool, a test collector), it does nothing.
"""

from __future__ import annotations

import atexit
import multiprocessing.forkserver
import os
import signal
import sys
from types import FrameType


def _in_fork_server() -> bool:
    """Whether the fork server's ``main`` is importing us (it imports its preload list)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is multiprocessing.forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


def _boot() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from streamyolo.inference.offline import import_openvino, preload
    from streamyolo.workers.process import SERVER_NAME, _set_process_name  # and the child's entry point

    preload()
    try:
        import_openvino()
    except ImportError:  # models that OpenVINO runs are then refused anyway
        pass
    _set_process_name(SERVER_NAME)  # what ps shows for the server; each child renames itself
    # The server ends when the main process does (its pipe's end-of-file); its children, set to
    # die with it, linger until it has: it ends at once, not after the seconds finalising what
    # it imported takes (the first of the exit handlers, registered last; the children, which
    # end with os._exit, never run them).
    atexit.register(os._exit, 0)


if _in_fork_server():
    _boot()
