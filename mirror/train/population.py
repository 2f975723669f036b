"""Population members: who trains together in one vmapped program.

A member is a seed plus the hyperparameters that keep shapes (learning rate, dropout
rate, L2 weight) and its true hidden widths. Members of different widths (same depth)
train together zero-padded to the widest width per layer; `mirror.agents.mlp`'s
`unit_mask` switches the padding off.
"""

import dataclasses

from mirror.base.errors import ConfigError
from mirror.train.config import TrainSource


@dataclasses.dataclass(frozen=True)
class Member:
    seed: int
    lr: float
    dropout: float
    l2: float
    widths: tuple  # true hidden widths, e.g. (17, 17)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "widths": list(self.widths)}


def is_population(config: TrainSource) -> bool:
    """True when any population list is set (results then hold per-member lists)."""
    m, t = config.model, config.train
    return any(len(v) for v in (t.population_seeds, t.population_lrs, t.population_l2s, m.population_widths, m.population_dropouts))


def members_from_config(config: TrainSource) -> list[Member]:
    """One member per entry of the (zipped) population lists, or the single model."""
    m, t = config.model, config.train
    lists = {
        "train.population_seeds": t.population_seeds,
        "train.population_lrs": t.population_lrs,
        "train.population_l2s": t.population_l2s,
        "model.population_widths": m.population_widths,
        "model.population_dropouts": m.population_dropouts,
    }
    sizes = {name: len(values) for name, values in lists.items() if len(values)}
    if len(set(sizes.values())) > 1:
        raise ConfigError(f"population lists must have one entry per member, but their lengths differ: {sizes}")
    count = next(iter(sizes.values()), 1)

    def column(name, default):
        values = lists[name]
        return list(values) if values else [default] * count

    members = [
        Member(seed=int(seed), lr=float(lr), dropout=float(dropout), l2=float(l2), widths=tuple(int(w) for w in widths))
        for seed, lr, dropout, l2, widths in zip(
            column("train.population_seeds", config.seed),
            column("train.population_lrs", t.lr),
            column("model.population_dropouts", m.dropout),
            column("train.population_l2s", t.l2),
            column("model.population_widths", m.widths),
        )
    ]
    validate_members(members)
    return members


def validate_members(members: list[Member]) -> None:
    """Checks for members built in code (sweeps); config-built ones pass by construction."""
    if not members:
        raise ConfigError("a population needs at least one member")
    for i, member in enumerate(members):
        if not member.widths or any(w <= 0 for w in member.widths):
            raise ConfigError(f"member {i}: widths = {member.widths} is invalid: expected positive hidden widths")
        if not member.lr > 0:
            raise ConfigError(f"member {i}: lr = {member.lr} is invalid: expected a positive number")
        if not 0.0 <= member.dropout < 1.0:
            raise ConfigError(f"member {i}: dropout = {member.dropout} is invalid: expected a number in [0, 1)")
        if not member.l2 >= 0:
            raise ConfigError(f"member {i}: l2 = {member.l2} is invalid: expected a non-negative number")
    depths = {len(member.widths) for member in members}
    if len(depths) > 1:
        raise ConfigError(f"members of one population must have the same number of hidden layers, got {sorted(depths)}")


def padded_widths(members: list[Member]) -> tuple:
    """The widest width per hidden layer over the members: the widths a population's
    parameters are padded to (`Trainer.padded_widths`, `LoadedRun.padded_widths`). The
    widths a parameter tree is stored at are `mirror.analysis.cmni.param_widths`."""
    return tuple(max(widths) for widths in zip(*(member.widths for member in members)))
