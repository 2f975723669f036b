"""From trials to populations: which trials train together, and on which shard.

Trials share one compiled program when everything but the member settings (model seed,
learning rate, dropout rate, L2 weight, hidden widths) is equal and their widths fall in
the same power-of-two bucket (padding at most doubles a layer). Transformers
(`model.kind: transformer`) are never padded: they share a program only with trials of
the same kind and the same shape (depth, d_model, heads, mlp_ratio), and an MLP never
shares one with a transformer (the kind and shape are part of the key). Such trials are chunked
into populations of at most `max_population` members, padded with copies of the last
member to a multiple of the device count (the copies' results are dropped).

RL trials (`mode: rl`) share one compiled program when everything but the RL member
settings (seed, rl.lr, rl.partner_reward_weight, env.dependency, env.veil) is equal; a
population is one RL config whose `rl.population_*` lists hold those settings per
member (`rl_population_config`), trained by one `mirror.rl` run. Member m owns network m
of the run (`sharing: shared`) or networks 2m (Frog) and 2m+1 (Toad) (`independent`).

Shards (`--shard i/n`, or one per process on a multi-host run) own whole groups of
trials, assigned round-robin over the groups of the *full* trial list, so the split
does not depend on which trials are already finished or on how many devices a shard has.
"""

import dataclasses

from mirror.base.hashing import config_hash
from mirror.base.sharding import padded_population
from mirror.rl.config import RLConfig
from mirror.runs.config import Config, load_config
from mirror.sweep.spec import Trial
from mirror.train.population import Member

# What varies between the members of an RL population (the rl section's lists, zipped):
# rl.population_<list> <- (the trial's value of) field.
RL_MEMBER_LISTS = {
    "population_seeds": "seed",
    "population_lrs": "rl.lr",
    "population_partner_reward_weights": "rl.partner_reward_weight",
    "population_dependencies": "env.dependency",
    "population_veils": "env.veil",
    "population_soo_weights": "rl.soo_weight",
}


def rl_member_of(trial: Trial) -> dict:
    """The trial as an RL population member, in `mirror.rl.population.RLMember.to_dict()`
    form: {seed, lr, partner_reward_weight, env: {dependency, veil}}."""
    c = trial.config
    params = c.env_params
    member = {
        "seed": c.seed,
        "lr": float(c.rl.get("lr", RLConfig.lr)),
        "partner_reward_weight": float(c.rl.get("partner_reward_weight", RLConfig.partner_reward_weight)),
        "env": {"dependency": float(params.dependency), "veil": float(params.veil)},
    }
    soo = float(c.rl.get("soo_weight", RLConfig.soo_weight))
    return {**member, "soo_weight": soo} if soo else member  # as RLMember.to_dict


def networks_of(config: Config, member: int) -> list[int]:
    """The run's network indices of population member `member`: [m] when one network plays
    both players (`rl.sharing: shared`), [2m, 2m+1] (Frog's, Toad's) when `independent`."""
    if config.rl.get("sharing", "shared") == "independent":
        return [2 * member, 2 * member + 1]
    return [member]


def member_of(trial: Trial) -> Member:
    c = trial.config
    return Member(seed=c.seed, lr=c.train.lr, dropout=c.model.dropout, l2=c.train.l2, widths=c.model.widths)


def width_bucket(width: int) -> int:
    """The smallest power of two >= width: trials in one bucket train padded together."""
    return 1 << max(0, (width - 1).bit_length())


def rl_program_key(config: Config) -> str:
    """Equal keys: RL trials that can train as members of one RL population."""
    values = config.to_dict()
    for name in ("name", "seed", "tracking"):
        values.pop(name)
    values["data"].pop("cache_dir")
    per_member = ("lr", "partner_reward_weight", "soo_weight", *RL_MEMBER_LISTS)
    values["rl"] = {k: v for k, v in values["rl"].items() if k not in per_member}
    params = config.env_params  # compared as EnvParams, so a default and an explicit value agree
    values["env"] = {k: v for k, v in dataclasses.asdict(params).items() if k not in ("dependency", "veil")}
    return "rl:" + config_hash(values)


def program_key(config: Config) -> str:
    """Equal keys: (supervised) trials that can train as members of one population."""
    values = config.to_dict()
    for name in ("name", "seed", "tracking"):
        values.pop(name)
    model, train = values["model"], values["train"]
    if config.model.kind == "mlp":  # transformers are never padded: their shape is in `model` as is
        model["width"] = width_bucket(model["width"])
    for name in ("dropout", "population_widths", "population_dropouts"):
        model.pop(name)
    for name in ("lr", "l2", "population_seeds", "population_lrs", "population_l2s"):
        train.pop(name)
    values["data"].pop("cache_dir")
    return config_hash(values)


@dataclasses.dataclass(frozen=True)
class Population:
    trials: tuple  # Trial, in sweep order
    members: tuple  # Member per trial, then the padding copies
    config: Config  # the population's run config (population lists set)

    @property
    def population_id(self) -> str:
        values = self.config.to_dict()
        values.pop("name")
        values.pop("tracking")
        values["data"].pop("cache_dir")
        members = [m if isinstance(m, dict) else m.to_dict() for m in self.members]
        return config_hash({"config": values, "members": members})[:12]

    @property
    def is_rl(self) -> bool:
        return self.trials[0].is_rl

    @property
    def padding(self) -> int:
        return len(self.members) - len(self.trials)


def population_config(trials: list[Trial], members: list[Member]) -> Config:
    """The first trial's config, with one population entry per member."""
    values = trials[0].config.to_dict()
    values["name"] = f"population-{len(trials)}"
    values["model"]["population_dropouts"] = [m.dropout for m in members]
    if trials[0].config.model.kind == "mlp":  # population widths (padding) are MLP-only
        values["model"].update(width=max(max(m.widths) for m in members), population_widths=[list(m.widths) for m in members])
    values["train"].update(
        population_seeds=[m.seed for m in members],
        population_lrs=[m.lr for m in members],
        population_l2s=[m.l2 for m in members],
    )
    return load_config(None, values)


def rl_population_config(trials: list[Trial], members: list[dict]) -> Config:
    """The first trial's config with one `rl.population_*` entry per member (all five
    lists, zipped); each member's D and I override the config's env for that member."""
    values = trials[0].config.to_dict()
    values["name"] = f"rl-population-{len(trials)}"
    # The per-member lists replace the scalars they list (one value in one place).
    shared = {k: v for k, v in values["rl"].items() if k not in ("lr", "partner_reward_weight", "soo_weight")}
    values["rl"] = {
        **shared,
        "population_seeds": [m["seed"] for m in members],
        "population_lrs": [m["lr"] for m in members],
        "population_partner_reward_weights": [m["partner_reward_weight"] for m in members],
        "population_dependencies": [m["env"]["dependency"] for m in members],
        "population_veils": [m["env"]["veil"] for m in members],
    }
    if any(m.get("soo_weight", 0.0) for m in members):  # the list only where the overlap loss is swept
        values["rl"]["population_soo_weights"] = [m.get("soo_weight", 0.0) for m in members]
    return load_config(None, values)


def group_trials(trials: list[Trial]) -> list[list[Trial]]:
    """Trials by program key, groups in order of their first trial."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        key = rl_program_key(trial.config) if trial.is_rl else program_key(trial.config)
        groups.setdefault(key, []).append(trial)
    return list(groups.values())


def populations(trials: list[Trial], max_population: int, devices: int = 1) -> list[Population]:
    out = []
    for group in group_trials(trials):
        for start in range(0, len(group), max_population):
            chunk = group[start : start + max_population]
            rl = chunk[0].is_rl
            members = [rl_member_of(t) if rl else member_of(t) for t in chunk]
            members += [members[-1]] * (padded_population(len(members), devices) - len(members))
            config = (rl_population_config if rl else population_config)(chunk, members)
            out.append(Population(tuple(chunk), tuple(members), config))
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """"i/n" -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {text}: expected 0 <= i < n")
    return i, n


def shard_trials(trials: list[Trial], max_population: int, shard: tuple[int, int]) -> list[Trial]:
    """The trials shard i of n owns: whole populations of the full sweep, round-robin."""
    i, n = shard
    owned = [p for k, p in enumerate(populations(trials, max_population)) if k % n == i]
    return sorted((t for p in owned for t in p.trials), key=lambda t: t.index)
