"""Ray: start or join a cluster, run chunks as tasks with retries, report each one as it finishes.

Ray is imported only here (the optional extra ``vsflavr[distributed]``).  Each chunk is one Ray
task running :func:`vsflavr.render.chunk.run_chunk`, with one GPU where the cluster has GPUs;
Ray places the tasks, sets ``CUDA_VISIBLE_DEVICES`` for each, and runs a task again when its
worker dies or it raises :class:`~vsflavr.render.chunk.ChunkError`, up to ``max_tries`` times.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import ray
import ray.exceptions
import ray.util.scheduling_strategies

from .chunk import ChunkError, ChunkJob, ChunkResult, run_chunk

__all__ = ["ChunkFailed", "Cluster", "ConnectError", "connect", "run_all", "shutdown"]


class ChunkFailed(RuntimeError):
    """A chunk failed on every try; ``job`` is the chunk, the message says why."""

    def __init__(self, job: ChunkJob, reason: str) -> None:
        super().__init__(reason)
        self.job = job


class ConnectError(RuntimeError):
    """The Ray cluster could not be started or reached."""


@dataclass(frozen=True)
class Cluster:
    """Where tasks run: how many at a time, and what each one asks of Ray."""

    slots: int
    num_cpus: float
    num_gpus: float
    description: str


def _reachable(address: str) -> None:
    """Fail fast, with one line, when nothing answers at HOST:PORT (instead of waiting out Ray's own timeout)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConnectError(f"--address must be 'auto' or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConnectError(f"no Ray cluster answers at {address}: {exc.strerror or exc}") from None


def connect(address: str | None, workers: int | None) -> Cluster:
    """Join the cluster at ``address`` (``auto`` or HOST:PORT), or start a local one.

    Locally, ``workers`` chunks run at a time (default: one per GPU, else one per 4 CPU cores),
    each with an equal share of the CPU cores (Ray sets ``OMP_NUM_THREADS`` to it, which torch
    follows).  On a cluster, each task takes one GPU (or one CPU core where there are no GPUs)
    and ``workers``, when given, caps how many run at a time.
    """
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is not None:
        if address != "auto":
            _reachable(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConnectError(
                f"cannot join the Ray cluster at {address}: {str(exc).strip().splitlines()[0]} (is it running, and "
                "is this machine's Ray token, RAY_AUTH_TOKEN or ~/.ray/auth_token, the cluster's?)"
            ) from None
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        slots = min(workers or gpus or cpus, gpus or cpus)
        per_task = (1, 1) if gpus else (1, 0)
        return Cluster(slots, *per_task, f"Ray cluster at {address}: {cpus} CPUs, {gpus} GPUs")
    cpus = len(os.sched_getaffinity(0))
    try:
        import torch

        gpus = torch.cuda.device_count()
    except ImportError:
        gpus = 0
    slots = workers or gpus or max(1, cpus // 4)
    if gpus:
        ray.init(
            address="local", num_cpus=max(cpus, slots), num_gpus=min(slots, gpus), include_dashboard=False, **quiet
        )
        return Cluster(min(slots, gpus), 1, 1, f"local Ray: {min(slots, gpus)} workers, one GPU each")
    ray.init(address="local", num_cpus=max(cpus, slots), num_gpus=0, include_dashboard=False, **quiet)
    share = max(1, cpus // slots)
    return Cluster(slots, share, 0, f"local Ray: {slots} workers, {share} CPU cores each")


@ray.remote(num_cpus=0)
class _Progress:
    """Frames done so far by each running chunk, as its task reports them."""

    def __init__(self) -> None:
        self.frames: dict[int, int] = {}

    def report(self, index: int, frames: int) -> None:
        self.frames[index] = frames

    def take(self) -> dict[int, int]:
        return self.frames


def _task(job: ChunkJob, progress: ray.actor.ActorHandle) -> ChunkResult:
    """What a Ray task runs: one chunk, reporting its frames to the progress actor; the result names the node."""
    result = run_chunk(job, lambda frames: progress.report.remote(job.chunk.index, frames))
    return dataclasses.replace(result, node=ray.get_runtime_context().get_node_id())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, ChunkError):
        return str(exc.cause)
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"


def run_all(
    jobs: Iterable[ChunkJob],
    cluster: Cluster,
    max_tries: int,
    on_done: Callable[[ChunkResult], None],
    on_progress: Callable[[int], None],
) -> None:
    """Run every job as a Ray task, at most ``cluster.slots`` at a time, calling ``on_done`` as each finishes.

    ``on_progress(frames)`` hears, about once a second, how many frames the running chunks have done.

    Raises :class:`ChunkFailed` for the first chunk that failed ``max_tries`` times; the tasks
    still running are then cancelled (their workers killed, and with them vspipe and the encoder).
    """
    here = ray.get_runtime_context().get_node_id()  # the progress actor lives with the driver, where it can
    progress = _Progress.options(  # die only with the driver (soft: anywhere if that node takes no actors)
        scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(here, soft=True)
    ).remote()
    task = ray.remote(_task).options(
        num_cpus=cluster.num_cpus,
        num_gpus=cluster.num_gpus,
        max_retries=max_tries - 1,
        retry_exceptions=[ChunkError],
    )
    waiting = list(jobs)
    running: dict[ray.ObjectRef, ChunkJob] = {}
    try:
        while waiting or running:
            while waiting and len(running) < cluster.slots:
                job = waiting.pop(0)
                running[task.remote(job, progress)] = job
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                job = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise ChunkFailed(job, _reason(exc)) from None
                on_done(result)
            try:
                frames = ray.get(progress.take.remote())
            except ray.exceptions.RayActorError:  # its node died: progress goes on by whole chunks
                frames = {}
            on_progress(sum(frames.get(job.chunk.index, 0) for job in running.values()))
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=30)
        ray.kill(progress)


def shutdown() -> None:
    """Leave the cluster (a local one stops)."""
    ray.shutdown()
