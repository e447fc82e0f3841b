"""The guard inside a graded kernel (:mod:`utils.course.grading`): no network, no new processes, no
change to a file outside the submission's own folder.

Installed by the IPython start-up file that the grader writes for each submission; kept apart from
:mod:`utils.course.grading` so that the kernel imports nothing heavy before the notebook's first
cell. It is an audit hook (:func:`sys.addaudithook`), which cannot be removed once installed: it
stops what a notebook does through Python (``open``, ``os``, ``shutil``, ``subprocess``,
``socket``), on purpose or by mistake, but it is not a sandbox against native code (``ctypes``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["install_submission_guard"]

_PROCESS_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.fork", "os.forkpty", "pty.spawn", "os.startfile"}
_PATH_EVENTS = {  # event: the positions of the paths it changes, and of their dir_fd
    "os.remove": ((0,), 1), "os.rmdir": ((0,), 1), "shutil.rmtree": ((0,), 1),
    "os.rename": ((0, 1), None), "os.replace": ((0, 1), None), "shutil.move": ((0, 1), None),
    "os.mkdir": ((0,), 2), "os.chmod": ((0,), 2), "os.chown": ((0,), 3), "os.truncate": ((0,), None),
    "os.symlink": ((1,), 2), "os.link": ((1,), None), "os.utime": ((0,), 3),
    "shutil.copyfile": ((1,), None), "shutil.copytree": ((1,), None), "os.chflags": ((0,), None),
    "os.setxattr": ((0,), None), "os.removexattr": ((0,), None),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def install_submission_guard(offline=None, writable: Sequence[str] | None = None) -> None:
    """Inside a graded kernel: refuse network connections, new processes, and any change to a file
    outside the ``writable`` folders (default: ``$SALIENCY_GRADING_WRITABLE``, separated by
    ``os.pathsep``). Raises ``PermissionError`` with a message, from an audit hook (which cannot be
    removed). ``offline``: the module :mod:`utils.course.offline` (default: imported), whose guard
    is installed too and whose rule says which addresses are this machine's."""
    if offline is None:
        from . import offline
    offline.install_network_guard()
    _is_local = offline._is_local
    roots = [os.path.realpath(p) for p in (writable if writable is not None else
             os.environ.get("SALIENCY_GRADING_WRITABLE", "").split(os.pathsep)) if p]
    allowed_devices = {"/dev/null", "/dev/tty", "/dev/shm"}

    def resolve(path, dir_fd=None) -> str | None:
        if isinstance(path, int):
            return None
        path = os.fsdecode(path)
        if dir_fd is not None and not os.path.isabs(path):
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        return os.path.realpath(path)

    def inside(path: str | None) -> bool:
        return path is None or path in allowed_devices or path.startswith("/dev/shm/") or any(
            path == r or path.startswith(r + os.sep) for r in roots)

    def refuse(what: str):
        raise PermissionError(f"Graded notebooks may not {what}: the grader allows writing only "
                              "in the notebook's own folder.")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writes = (any(c in mode for c in "wax+") if isinstance(mode, str)
                      else bool((flags or 0) & _WRITE_FLAGS))
            if writes and not inside(resolve(path)):
                refuse(f"write to {os.fsdecode(path)!s}")
        elif event in _PATH_EVENTS:
            positions, fd_pos = _PATH_EVENTS[event]
            dir_fd = args[fd_pos] if fd_pos is not None and len(args) > fd_pos else None
            for p in positions:
                if len(args) > p and not inside(resolve(args[p], dir_fd)):
                    refuse(f"change {os.fsdecode(args[p])!s} ({event})")
        elif event in _PROCESS_EVENTS:
            raise PermissionError("Graded notebooks may not start processes (shell commands, "
                                  "subprocess, os.system).")
        elif event == "socket.connect" and len(args) > 1 and not _is_local(args[1]):
            raise PermissionError(f"Graded notebooks may not use the network (to {args[1]!r}).")

    sys.addaudithook(hook)
