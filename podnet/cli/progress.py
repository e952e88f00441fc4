"""Progress where people wait (``up``, ``probe``, ``verify``, a long ``apply``): a spinner with
the current step, the steps done as lines, and a bar when the amount of work is known, on
standard error when it is a terminal. In a pipe or a file nothing is shown, so a script sees
only the command's own output."""
from __future__ import annotations

from types import TracebackType
from typing import Any


class Progress:
    """``with Progress("podnet up") as p: p.step("…"); p.advance(done, total)``."""

    def __init__(self, title: str, *, counted: bool = False, show: bool = True, console: Any = None) -> None:
        from rich.console import Console

        self.title = title
        self.counted = counted  # a bar and "done/total": the amount of work is known
        self.console = console if console is not None else Console(stderr=True, log_path=False)
        self.enabled = show and bool(self.console.is_terminal) and not self.console.is_dumb_terminal
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            counts = (BarColumn(), MofNCompleteColumn()) if self.counted else ()
            self._bar = Bar(SpinnerColumn(), TextColumn("{task.description}"), *counts, TimeElapsedColumn(),
                            console=self.console, transient=True)
            self._task = self._bar.add_task(self.title, total=None)
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def step(self, message: str, *, done: bool = False) -> None:
        """The current step (``done``: also leave it on the screen as a line)."""
        if self._bar is None:
            return
        self._bar.update(self._task, description=f"{self.title}: {message}")
        if done:
            self._bar.console.log(message)

    def advance(self, done: int, total: int) -> None:
        """``done`` of ``total`` units of work."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)
