"""Several processes (torchrun, accelerate launch): one global batch, one run directory, one stop.

gistlab trains under DDP through ``SentenceTransformerTrainer``'s own support: each of the W
processes trains on its own batch of ``batch_size`` rows (consecutive batches of the planned
order, dealt out by the trainer's distributed sampler) and DDP averages the gradients. This module
holds what GIST adds on top, each piece the identity when there is no process group:

- :func:`gather_batch`: the loss's view of the *global* batch. Student embeddings of every text
  column are all-gathered with gradients, guide embeddings and dataset row ids without, so every
  process masks (with :func:`core.method.masking.guided_mask`, identical-text rule included) and
  contrasts its own rows against all W * B rows; its targets stay its own positives.
- :func:`on_main`, :class:`StopSync`, :class:`SilentRecorder`: only rank 0 writes the run
  directory; a stop that rank 0 decides (the STOP file) ends every rank after the same step.
- :func:`fill_guide_cache`: the guide cache filled in parallel, each process encoding a shard,
  merged so the cache equals the one a single process builds.

Exactness: with gathering, process r's loss is the mean of the single-process per-row losses of
the global batch over r's rows, so the mean over processes is the single-process loss of the
global batch; and since the gradient of a gathered embedding is summed back to the process that
made it, DDP's average of the gradients is the single-process gradient of that loss.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from sentence_transformers.util import all_gather, all_gather_with_grad, get_rank, get_world_size
from torch import Tensor
from transformers import TrainerCallback

from core.errors import GistlabError
from core.guides.guide_cache import FILL_CHUNK, GuideCache

T = TypeVar("T")


def launched() -> bool:
    """Whether this process was started as one of several (torchrun / accelerate set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> None:
    """Join the process group the launcher describes (env://): NCCL with GPUs, gloo without.

    A no-op for a single process or an existing group. The trainer's accelerate state later
    finds the group initialised and reuses it.
    """
    if not launched() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def is_main() -> bool:
    """Rank 0, or the only process."""
    return get_rank() == 0


def trainer_options() -> dict:
    """Extra ``TrainingArguments`` for the launch: several processes on CPUs need ``use_cpu``
    (else accelerate sees no distributed device and every process would train alone)."""
    if launched() and not torch.cuda.is_available():
        return {"use_cpu": True, "ddp_backend": "gloo"}
    return {}


def _device() -> torch.device:
    """Where collectives' tensors must live: the GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its (picklable) result to every rank.

    If it fails there, rank 0 re-raises and every other rank raises a :class:`GistlabError` with
    the same message, so all processes end the same way instead of waiting for each other.
    """
    if get_world_size() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as exc:  # re-raised below, after the others heard of it
            error = exc
    payload = [(result, None if error is None else str(error))]
    dist.broadcast_object_list(payload, src=0)
    if error is not None:
        raise error
    result, message = payload[0]
    if message is not None:
        raise GistlabError(message)
    return result


def gather_batch(
    embeddings: list[Tensor], guide: Tensor, rows: Tensor
) -> tuple[list[Tensor], Tensor, Tensor, slice]:
    """This process's batch -> the global batch of all processes, in rank order.

    Args:
        embeddings: student embeddings [B, D] of each text column (anchor, positive, negatives).
        guide: guide embeddings [columns, B, D] of the same texts.
        rows: dataset row ids [B] of the batch (the loss finds the texts by them).

    Returns:
        The three gathered to W * B rows, and the slice of this process's own rows in them.
        Student embeddings keep gradients (sentence-transformers' ``all_gather_with_grad``: what
        another process's loss asks of a candidate flows back to the process that embedded it);
        guide embeddings and row ids need none. Every process must pass the same B (the trainer
        drops incomplete batches). One process: the inputs unchanged and ``slice(None)``.
    """
    if get_world_size() == 1:
        return embeddings, guide, rows, slice(None)
    batch = rows.shape[0]
    start = get_rank() * batch
    embeddings = [all_gather_with_grad(e) for e in embeddings]
    guide = all_gather(guide.transpose(0, 1).contiguous()).transpose(0, 1)
    rows = all_gather(rows.to(_device())).cpu()
    return embeddings, guide, rows, slice(start, start + batch)


def gather_rows(labels: Tensor) -> list[int]:
    """Dataset row ids of the global batch (every process's ``labels``, in rank order)."""
    if get_world_size() == 1:
        return labels.tolist()
    return all_gather(labels.to(_device())).tolist()


class StopSync(TrainerCallback):
    """Ends every process after the same step: a stop any process decided (rank 0 reads the STOP
    file) is all-reduced after each step, so no process is left waiting in the next collective.

    Must come after the callback that decides the stop (``core.training.recorder.RunRecorder``).
    """

    def on_step_end(self, args, state, control, **kwargs):
        if get_world_size() > 1:
            flag = torch.tensor([int(control.should_training_stop)], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            control.should_training_stop = bool(flag.item())


class SilentRecorder(TrainerCallback):
    """Stands in for ``core.training.recorder.RunRecorder`` on ranks other than 0: same calls, writes nothing."""

    stop_requested = False

    def attach(self, trainer, step_mask) -> None:
        """Nothing to record on this rank."""

    def finish(self, state: str, error: str | None = None) -> None:
        """Rank 0 says how the run ended."""


def fill_guide_cache(cache: GuideCache, texts: Sequence[str], chunk: int = FILL_CHUNK,
                     progress: Callable[[int, int], None] | None = None) -> int:
    """Encode every text ``cache`` lacks, split across processes; returns how many were encoded.
    ``progress`` hears (distinct texts stored, distinct texts) at the start and after each round.

    Every process calls it with the same texts. The texts missing from any process's cache (each
    once, in order of first appearance) go in rounds of ``chunk`` per process: each process
    encodes a contiguous share of the round, the shares are all-gathered, and every process adds
    the whole round to its cache in order (on a shared disk the first writer appends and the
    others find the rows present; node-local caches are each filled). The result equals
    ``cache.fill(texts)`` in one process: same index order, embeddings equal up to the float noise
    of batching texts differently.
    """
    world = get_world_size()
    if world == 1:
        return cache.fill(texts, progress)
    progress = progress or (lambda done, total: None)
    unique = list(dict.fromkeys(texts))
    cached = torch.tensor([t in cache for t in unique], dtype=torch.int32, device=_device())
    dist.all_reduce(cached, op=dist.ReduceOp.MIN)  # cached only if cached everywhere
    missing = [t for t, c in zip(unique, cached.tolist()) if not c]
    rank = get_rank()
    progress(len(unique) - len(missing), len(unique))
    for start in range(0, len(missing), chunk * world):
        round_texts = missing[start : start + chunk * world]
        bounds = np.linspace(0, len(round_texts), world + 1).round().astype(int)
        sizes = np.diff(bounds)
        share = round_texts[bounds[rank] : bounds[rank + 1]]
        padded = torch.zeros(int(sizes.max()), cache.dim, dtype=torch.float32, device=_device())
        if share:  # a round smaller than the world leaves some processes nothing to encode
            padded[: len(share)] = torch.from_numpy(cache.encode(share))
        shares = all_gather(padded).cpu().view(world, -1, cache.dim)
        cache.add(round_texts, torch.cat([shares[r, : sizes[r]] for r in range(world)]))
        progress(len(unique) - len(missing) + start + len(round_texts), len(unique))
    return len(missing)
