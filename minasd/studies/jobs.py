"""The job runner shared by ``minasd results`` and ``minasd controlled``: a pool, a log per job, provenance.

A study is a list of tasks (a (seed, type) of :mod:`.results`, every variant and comparison
system of that seed and type in one task; a (row, type) or a type's shared baseline, the GMM on
log-mel mean/std, of :mod:`.controlled`).  :class:`JobRunner` runs them ``jobs`` at a time:

* with one job, in this process (:class:`InlinePool`), its output on the console;
* with more, in a process pool of fresh interpreters (spawn), each with its share of the
  cores (:func:`job_init`) and its output in ``<logs>/<name>.log`` (:func:`in_log`).

A task may wait for others (a later seed for the first seed's lambda, a row for the
reference row of its type).  What a task writes is the study's business: the rule of
issue 20 (a job writes only its own type's files, the scheduling process alone merges
and publishes) lives in the study and in :func:`minasd.studies.experiment.experiment`.

:func:`run_provenance` is the part of a study's ``provenance`` that says where and how it
ran (commit, machine, parallel jobs); :func:`command_line` retypes the command.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

from ..io_utils import git_commit


def now() -> str:
    """The local time as the studies' provenance writes it: ``2024-05-01T12:00:00+0200``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def default_jobs(device: str, cpu_count: int | None = None) -> int:
    """Trainings run at once by default: 2 on a CPU with 2 cores or more, else 1.

    Measured on 2 cores (``benchmarks/results/train_cpu_threads.txt``): the cpu profile's step
    gives 110 crops/s on 2 threads and 72 on 1, so two one-thread trainings side by side do
    about 1.3x the work of one two-thread training (a small encoder at batch 32 does not keep
    two threads busy).  On a GPU the trainings share one device: 1."""
    cpu_count = cpu_count or os.cpu_count() or 1
    return 2 if device == "cpu" and cpu_count >= 2 else 1


def job_init(threads: int) -> None:
    """Worker start-up (a fresh interpreter, before torch is imported): its share of the cores."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def in_log(log_path: str | None, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, its stdout and stderr appended to ``log_path`` (None: left alone).

    Runs in a worker process: redirecting the output is per process, not per thread."""
    if log_path is None:
        return fn(*args, **kwargs)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), \
            contextlib.redirect_stderr(fh):
        return fn(*args, **kwargs)


class InlinePool:
    """The one-job case: tasks run in this process, through the same scheduling code."""

    def submit(self, fn, *args):
        fut = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by fut.result()
            fut.set_exception(exc)
        return fut

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def machine_info(device: str) -> dict:
    """The ``machine`` block of a study's provenance: platform, processor, CPU cores, device."""
    return {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "device": device}


@dataclass(frozen=True)
class JobRunner:
    """Runs a study's tasks ``jobs`` at a time, each with ``threads`` threads, logs under ``logs``.

    Attributes:
        jobs: tasks at once (1: in this process, output on the console).
        threads: threads of each worker (the cores shared among the jobs).
        logs: the folder of the per-job logs (used when ``jobs`` > 1).
    """

    jobs: int
    threads: int
    logs: Path

    @classmethod
    def plan(cls, requested: int | None, device: str, logs: Path) -> "JobRunner":
        """``--jobs`` (None: :func:`default_jobs`) and the cores split among the jobs.

        Raises:
            ValueError: fewer than one job.
        """
        jobs = requested or default_jobs(device)
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        return cls(jobs=jobs, threads=max(1, (os.cpu_count() or 1) // jobs), logs=Path(logs))

    def log(self, name: str) -> str | None:
        """The log file of one job, or None when the jobs run in this process."""
        return str(self.logs / f"{name}.log") if self.jobs > 1 else None

    def note(self) -> str:
        """How the tasks run, for the line that announces them."""
        return f", {self.threads} thread(s) each; logs in {self.logs}" if self.jobs > 1 else ""

    def parallel(self) -> dict:
        """The ``parallel`` block of a study's provenance."""
        return {"jobs": self.jobs, "threads_per_job": self.threads if self.jobs > 1 else None}

    def pool(self):
        """A process pool of fresh interpreters (spawn: no inherited torch threads), or :class:`InlinePool`."""
        if self.jobs == 1:
            return InlinePool()
        import multiprocessing as mp

        return concurrent.futures.ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"),
                                                      initializer=job_init, initargs=(self.threads,))

    def run(self, tasks: Sequence[Hashable], submit: Callable[[Any, Hashable], concurrent.futures.Future],
            on_result: Callable[[Hashable, Any], None],
            waits: Callable[[Hashable, list], bool] = lambda task, queued: False,
            after_round: Callable[[], None] | None = None) -> None:
        """Run every task; returns once all have finished (an exception of a task is raised here).

        Args:
            tasks: the tasks, in the order they may start.
            submit: ``submit(pool, task)`` starts one task (``pool.submit(fn, *args)``) and returns its future.
            on_result: called in this process with each finished task and its result, as they finish.
            waits: ``waits(task, queued)`` is True while ``task`` must wait for others (``queued``:
                the tasks not started or not finished yet); it may raise when what it waits for is
                not among them.
            after_round: called after the results of each round of finished tasks.

        Raises:
            RuntimeError: tasks wait while nothing runs.
        """
        pending, running = list(tasks), {}
        with self.pool() as pool:
            while pending or running:
                for task in list(pending):
                    if len(running) >= self.jobs:
                        break
                    if waits(task, pending + list(running.values())):
                        continue
                    pending.remove(task)
                    running[submit(pool, task)] = task
                if not running:
                    raise RuntimeError(f"tasks {pending} wait for tasks that are not scheduled")
                finished, _ = concurrent.futures.wait(list(running), return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in finished:
                    task = running.pop(fut)
                    on_result(task, fut.result())
                if after_round is not None:
                    after_round()


def run_provenance(runner: JobRunner, device: str) -> dict:
    """Where and how a study ran: ``git_commit``, ``machine`` (:func:`machine_info`), ``parallel``."""
    return {"git_commit": git_commit(), "machine": machine_info(device), "parallel": runner.parallel()}


def command_line(command: str, options: Sequence[tuple[str, Any]]) -> str:
    """The command as a reader would retype it: ``minasd <command>`` and its options in order.

    A value of None leaves its option out; a list or tuple is joined by spaces.

    >>> command_line("results", [("--seeds", [0, 1]), ("--data", None), ("--epochs", 2)])
    'minasd results --seeds 0 1 --epochs 2'
    """
    parts = [f"minasd {command}"]
    for flag, value in options:
        if value is None:
            continue
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{flag} {shown}")
    return " ".join(parts)
