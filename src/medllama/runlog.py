"""A local pipeline run shows one progress bar; everything it prints goes to a log file.

kfp.local prints each task's executor input, its streamed logs and its outputs on stdout (about 1,900
lines for the tiny demo). Inside `quiet_run`, stdout and stderr go to the log instead, and the terminal
shows a tqdm bar of finished tasks with the one running now, read from kfp.local's own "Executing task"
and "finished with status" lines. A failure prints the log's last lines and where the log is.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
TAIL_LINES = 25


class _ToLog(io.TextIOBase):
    """A stream that writes to the log and moves the bar on kfp.local's task lines (tasks run in threads)."""

    def __init__(self, log, bar: tqdm):
        self.log, self.bar, self.lock, self.partial = log, bar, threading.Lock(), ""
        self.running: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            self.log.write(text)
            *lines, self.partial = (self.partial + text).split("\n")
            for line in lines:
                self._follow(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _follow(self, line: str) -> None:
        if m := _STARTED.search(line):
            self.running.append(m[1])
        elif m := _FINISHED.search(line):
            with contextlib.suppress(ValueError):
                self.running.remove(m[1])
            self.bar.update(1)
        else:
            return
        self.bar.set_postfix_str(", ".join(dict.fromkeys(self.running)) or "waiting", refresh=True)


@contextlib.contextmanager
def quiet_run(log_path: Path, what: str) -> Iterator[None]:
    """Send stdout/stderr to `log_path` while the block runs; show a bar of finished tasks instead."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.__stderr__
    with open(log_path, "w", encoding="utf-8") as log:
        size = shutil.get_terminal_size((100, 20))  # a pty may report 0 x 0, and tqdm then shows nothing
        bar = tqdm(desc=what, unit=" tasks", file=terminal, bar_format="{desc}: {n} tasks done [{elapsed}{postfix}]",
                   ncols=size.columns, nrows=size.lines)
        stream = _ToLog(log, bar)
        root, handlers = logging.getLogger(), logging.getLogger().handlers[:]
        to_log = logging.StreamHandler(stream)  # handlers made earlier hold the terminal's stream itself
        to_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.handlers = [to_log]
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        except BaseException:
            bar.close()
            log.flush()
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
            print("\n".join(_ANSI.sub("", line) for line in tail), file=terminal)
            print(f"\nThe run failed; its whole log: {log_path}", file=terminal)
            raise
        finally:
            root.handlers = handlers
        bar.close()
