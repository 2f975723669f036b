"""Populations split over devices: a one-axis `pop` mesh over the local devices.

Members never talk to each other, so a population shards along its member axis with no
communication at all: every device trains its own slice of members (`jax.shard_map`)
on a full copy of the training data. Across hosts either each process builds the same
mesh over its own local devices and trains its own populations (`mirror sweep
--distributed`), or one mesh spans every process's devices (`mirror rl --distributed`):
the processes run that one run together, each training the members on its own devices,
and process 0 writes the run's files (`leads`).
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

POP_AXIS = "pop"


def population_mesh(devices: list | None = None) -> Mesh:
    """A `pop` mesh over `devices` (default: this process's local devices)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (POP_AXIS,))


def member_sharding(mesh: Mesh) -> NamedSharding:
    """Leading [members] axis split over the mesh."""
    return NamedSharding(mesh, PartitionSpec(POP_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def padded_population(members: int, devices: int) -> int:
    """Members rounded up to a multiple of the devices (the extra members are padding)."""
    return -(-members // devices) * devices


def spans_processes(mesh: Mesh | None) -> bool:
    """True when `mesh` holds devices of other processes: its run is run by all of them together."""
    return mesh is not None and any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def leads(mesh: Mesh | None) -> bool:
    """Whether this process writes the files of a run on `mesh`: always, unless the run is
    split over several processes and this one is not process 0."""
    return not spans_processes(mesh) or jax.process_index() == 0


def sync_processes(mesh: Mesh | None, name: str) -> None:
    """Wait until every process of a run split over several has reached `name` (a no-op
    for a run of this process alone)."""
    if spans_processes(mesh):
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
