"""What a training run shows while it runs: a progress bar on a terminal, log lines otherwise."""
from __future__ import annotations

import sys


def fmt_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


class Reporter:
    """A rich progress bar on a terminal, plain log lines otherwise; silent off the main process."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.enabled = enabled
        self.bar = None
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), console=console, transient=False)
            self.task = self.bar.add_task("train", total=total, completed=done, info="")
            self.bar.start()

    def update(self, step: int, total: int, info: str, log_line: bool) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, total=total, info=info)
        elif self.enabled and log_line:
            print(f"step {step}/{total} {info}", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
