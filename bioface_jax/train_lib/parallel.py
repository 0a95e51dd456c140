"""Data parallelism: a `('data',)` device mesh, replicated state, sharded batches.

The trainer runs one `jax.jit`-compiled step over every visible device: the batch is split along
its leading axis over the mesh axis `'data'` (`P('data')`), parameters and optimiser state are
replicated (`P()`), and XLA inserts the gradient all-reduce. This is what `jax.pmap` became;
because the arrays are *global*, batch statistics (e.g. BatchNorm means) are computed over the
whole global batch, so a run on N devices gives the same numbers as on one.

The mesh axis uses `AxisType.Auto` rather than JAX's default `Explicit` axis type: with
`Auto`, sharding is a compiler decision guided by `in_shardings`/`out_shardings`, and model code
(convolutions, reductions over the batch) needs no sharding annotations. Under `Explicit`,
some gradients (e.g. convolution weight gradients of a batch-sharded input) raise
`ShardingTypeError`.

Multi-host: call `maybe_initialize_distributed()` before anything touches a device; each
process then feeds its *process-local* rows of the global batch to `shard_batch`, which
assembles the global array with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def maybe_initialize_distributed() -> bool:
  """Calls `jax.distributed.initialize()` when launched as one of several processes.

  Must run before any other JAX call that touches devices. Detected launchers:

  * explicit: `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` all set
    (with `JAX_NUM_PROCESSES` > 1);
  * SLURM (`srun`): `SLURM_JOB_ID`, `SLURM_STEP_NODELIST`, `SLURM_PROCID`, `SLURM_LOCALID` set
    and `SLURM_NTASKS` > 1;
  * Open MPI (`mpirun`): `OMPI_MCA_orte_hnp_uri` set and `OMPI_COMM_WORLD_SIZE` > 1;
  * multi-host Cloud TPU: `TPU_WORKER_HOSTNAMES` lists more than one host.

  In every other case (one process, the usual single machine with one or several
  accelerators) nothing happens.

  Returns:
    True if `jax.distributed.initialize()` was called (now or earlier), else False.
  """
  if jax.distributed.is_initialized():
    return True
  env = os.environ
  if (env.get("JAX_COORDINATOR_ADDRESS") and env.get("JAX_NUM_PROCESSES")
      and env.get("JAX_PROCESS_ID")):
    if int(env["JAX_NUM_PROCESSES"]) <= 1:
      return False
    jax.distributed.initialize(
        coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(env["JAX_NUM_PROCESSES"]),
        process_id=int(env["JAX_PROCESS_ID"]))
    return True
  slurm = all(k in env for k in (
      "SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"))
  multi = (
      (slurm and int(env["SLURM_NTASKS"]) > 1)
      or ("OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1)
      or len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1)
  if multi:
    jax.distributed.initialize()  # JAX's cluster auto-detection fills in the rest.
    return True
  return False


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis `('data',)` mesh over `devices` (default: every device of every process).

  Args:
    devices: the devices to use; a subset such as `jax.devices()[:1]` gives a smaller mesh
      (used by tests to compare 1-device and N-device runs).

  Returns:
    A `jax.sharding.Mesh` with the single `AxisType.Auto` axis `'data'`.
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("make_mesh: got an empty device list.")
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  """The sharding that places a full copy of an array on every device of `mesh`."""
  return NamedSharding(mesh, P())


def data_sharding(mesh: Mesh) -> NamedSharding:
  """The sharding that splits an array's leading (batch) axis over the `'data'` axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every leaf of `tree` (arrays or array-likes) replicated on all devices of `mesh`."""
  return jax.device_put(tree, replicated_sharding(mesh))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """Raises a `ValueError` unless the global batch size splits evenly over the mesh.

  Args:
    batch_size: the global batch size (all processes together).
    mesh: the data-parallel mesh.
  """
  n = mesh.devices.size
  if batch_size <= 0 or batch_size % n:
    raise ValueError(
        f"batch_size={batch_size} must be a positive multiple of the number of devices in the "
        f"data-parallel mesh ({n}); use e.g. batch_size={max(n, (batch_size // n) * n or n)}.")


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Turns this process's batch rows into global arrays sharded `P('data')`.

  In a single-process run `batch` is the whole global batch. In a multi-process run each
  process passes its own `global_batch // process_count` rows (in process order) and gets
  back the global array.

  Args:
    batch: a dict of NumPy arrays, all with the same leading (batch) dimension.
    mesh: the data-parallel mesh.

  Returns:
    A dict with the same keys holding global `jax.Array`s sharded over `'data'`.
  """
  if not isinstance(batch, Mapping) or not batch:
    raise TypeError(f"shard_batch: expected a non-empty dict of arrays, got {type(batch)}.")
  sharding = data_sharding(mesh)
  n_local = len(mesh.local_devices)
  rows = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in batch.items()}
  bad = {k: r for k, r in rows.items() if r is None}
  if bad:
    raise ValueError(f"shard_batch: entries {sorted(bad)} are scalars; every batch entry needs "
                     "a leading batch dimension.")
  if len(set(rows.values())) != 1:
    raise ValueError(f"shard_batch: batch entries disagree on the batch dimension: {rows}.")
  local_rows = next(iter(rows.values()))
  if local_rows % n_local:
    raise ValueError(
        f"shard_batch: this process's batch has {local_rows} rows, not a multiple of its "
        f"{n_local} local devices; the (global) batch size must divide by the device count "
        f"({mesh.devices.size}).")
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    global_shape = (local_rows * jax.process_count(),) + v.shape[1:]
    out[k] = jax.make_array_from_process_local_data(sharding, v, global_shape)
  return out
