"""The few torch.distributed operations dydet needs, each a no-op in a single process.

Every function here is a collective when a process group is initialised: all processes must call it, in the same
order (as the training loop does, where every process runs the same steps).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    """Return the number of processes of the initialised process group, 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def from_rank0(obj: Any) -> Any:
    """Return rank 0's `obj` in every process (a picklable object); `obj` itself in a single process."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_cat(values: torch.Tensor) -> torch.Tensor:
    """Return the 1-D concatenation, in rank order, of every process's `values` (lengths may differ).

    Args:
        values (torch.Tensor): This process's values (any shape; flattened, detached).

    Returns:
        (torch.Tensor): All processes' values on `values`' device; `values` flattened in a single process.
    """
    values = values.detach().flatten()
    n = world_size()
    if n == 1:
        return values
    # gloo gathers CPU tensors, nccl tensors on the process's GPU: the tensor's own device suits either backend
    size = torch.tensor([values.numel()], device=values.device)
    sizes = [torch.zeros_like(size) for _ in range(n)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=values.dtype, device=values.device)
    padded[: values.numel()] = values
    parts = [torch.zeros_like(padded) for _ in range(n)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])
