"""Populations split over devices: a one-axis `pop` mesh over the local devices.

Members never talk to each other, so a population shards along its member axis with no
communication at all: every device trains its own slice of members (`jax.shard_map`)
on a full copy of the training data. Across hosts each process builds the same mesh
over its own local devices and trains its own populations (see `mirror.sweep`).
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
