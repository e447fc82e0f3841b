"""The grader's worker (:mod:`utils.course.grading`): execute one assembled submission in a fresh
kernel and log every cell as it runs.

``python utils/course/grading_worker.py NOTEBOOK EVENTS OUT TIMEOUT MAX_OUTPUT MEMORY FILE_SIZE`` —
run as a script by the grader, in the submission's temporary folder. It first limits itself, and
so the kernel it starts, to ``MEMORY`` bytes of data (``RLIMIT_DATA``: an allocation beyond it
raises ``MemoryError``) and files of ``FILE_SIZE`` bytes. It imports nothing from
``utils`` (whose ``__init__`` imports torch), so it starts in a second. ``EVENTS`` gets one JSON line
per event (``start``/``done`` of each code cell, with its error, then ``end`` with the reason), so
that the grader knows how far a notebook got when it has to kill it; ``OUT`` gets the executed
notebook (outputs capped at ``MAX_OUTPUT`` characters per cell).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat


def limit(memory: int, file_size: int) -> None:
    """Limit this process and its children: data segment, file size, no core dumps."""
    import resource

    for name, value in (("RLIMIT_DATA", memory), ("RLIMIT_FSIZE", file_size), ("RLIMIT_CORE", 0)):
        if hasattr(resource, name):
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError):
                pass


def run(notebook: Path, events: Path, out: Path, timeout: int, max_output: int) -> int:
    """Execute ``notebook`` (in its folder), appending one JSON line per cell event to ``events``
    and writing the executed notebook to ``out``. Runs in the grading subprocess."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    log = events.open("a", buffering=1)
    log.write(json.dumps({"event": "worker", "t": round(time.monotonic(), 2)}) + "\n")

    def emit(**event):
        log.write(json.dumps({**event, "t": round(time.monotonic(), 2)}) + "\n")

    class CappedClient(NotebookClient):
        chars: dict[int, int] = {}

        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content", {})
            size = len(json.dumps(content))
            used = self.chars.get(cell_index, 0)
            self.chars[cell_index] = used + size
            if used + size <= max_output:
                return super().output(outs, msg, display_id, cell_index)
            if used <= max_output:   # the first output over the cap: keep its start, say so
                if msg.get("msg_type") == "stream":
                    outs.append(nbformat.v4.new_output("stream", name=content.get("name", "stdout"),
                                                       text=str(content.get("text", ""))[:max(0, max_output - used)]))
                outs.append(nbformat.v4.new_output(
                    "stream", name="stderr",
                    text=f"[output cut by the grader after {max_output} characters]\n"))
            return None

    def executed(cell, cell_index, execute_reply=None, **_):
        error = next(([o.get("ename", ""), o.get("evalue", "")] for o in cell.get("outputs", [])
                      if o.get("output_type") == "error"), None)
        emit(event="done", cell=cell_index, error=error)

    nb = nbformat.read(notebook, as_version=4)
    client = CappedClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                          shutdown_kernel="immediate",
                          resources={"metadata": {"path": str(notebook.parent)}},
                          on_cell_execute=lambda cell, cell_index, **_: emit(event="start", cell=cell_index),
                          on_cell_executed=executed)
    status = 0
    try:
        client.execute()
    except CellTimeoutError:
        emit(event="end", reason="timeout")
        status = 2
    except DeadKernelError:
        emit(event="end", reason="dead")
        status = 3
    except Exception as err:  # the kernel would not start, a message it could not parse, …
        emit(event="end", reason="crash", detail=f"{type(err).__name__}: {err}"[:600])
        status = 4
    else:
        emit(event="end", reason="done")
    try:
        nbformat.write(nb, out)
    except Exception:
        pass
    return status


if __name__ == "__main__":
    notebook, events, out, timeout, max_output, memory, file_size = sys.argv[1:8]
    limit(int(memory), int(file_size))
    sys.exit(run(Path(notebook), Path(events), Path(out), int(timeout), int(max_output)))
