"""A causal test of the mirror units: do they carry the helping? (`mirror ablate`)

Chosen hidden units of an MLP actor are replaced by a fixed value (their mean activation,
or zero; `mirror.agents.ablation`) and the ablated agents play the evaluation games
(`mirror.rl.baselines.evaluate`, the one turn function): the return and the help rates
beside the intact agents' in the same games (common random numbers: the same key gives
every ablation the same start states and env noise).

**Units** are hidden units only, named as in the paper (`mirror.agents.units.neuron_name`):
`L1N3` is unit 3 (0-based) of the first hidden layer. The logits cannot be ablated (fixing
one would fix the policy, not remove a unit). Three ways to choose them (`parse_units`):

- `top-mns:K`: the K hidden units of highest MNS (spec §7) on probe set (a), over all
  hidden layers together; ties go to the lower layer, then the lower unit
  (`top_mns_masks`). With fewer than K units of MNS > 0 the rest are units of MNS 0.
- `random:K`: K random hidden units with the same count per layer as `top-mns:K`, drawn
  uniformly without replacement within each layer (`random_masks`): the control of the
  registered test H6 (docs/theory_experiment.md).
- `L1N3,L2N7,...`: those units.

**Two networks.** Everything carries a leading axis of 2: Frog's network, Toad's
(`mirror.runs.watch.Agents`). With shared sharing both are the one network. With independent
sharing named units are ablated in both networks; top-MNS units are each network's own
(its own MNS); a random draw is the same draw in both networks (the same units when their
per-layer counts agree).

**Values** (`ablation_values`): mode "mean" fixes a unit at its mean activation over the
given rows (the command uses the checkpoint's on-policy probe rows (b): the states the
agents meet), each network over its own rows; mode "zero" at 0.

**Evaluation** (`evaluate_ablations`): any number of ablations in one jitted program
(`lax.map` over ablations, `batch` of them vmapped at a time), each scored by `evaluate`
pooled over games and both players: `RATES`. A rate with nothing to divide by is NaN.

**The statistic of H6** (`ablation_gap`): the drop of a rate under the top-MNS ablation
minus the mean drop under random ablations, = mean over draws of the random rate minus the
top-MNS rate (draws where the rate is NaN are left out).
"""

import re
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mirror.agents.ablation import ablated_logits, layer_widths, mean_activations, random_ablation
from mirror.agents.units import neuron_name
from mirror.env import EnvParams
from mirror.rl.baselines import evaluate
from mirror.rl.ppo import policy_input
from mirror.rl.turns import agent, per_player

RATES = ("return", "help_rate", "help_when_partner_distressed", "help_when_partner_energy0", "help_given_opportunity")
MODES = ("mean", "zero")
KINDS = ("top-mns", "random", "units")
MAX_BATCH_GAMES = 4096  # games of the ablations played side by side (vmapped) in one batch
UNIT_SYNTAX = "top-mns:K, random:K or unit names such as L1N3,L2N7"


class UnitSpec(NamedTuple):
    """What `--units` asks for: kind "top-mns" or "random" with k, or "units" with
    (layer, unit) pairs (0-based)."""

    kind: str
    k: int = 0
    units: tuple = ()

    def __str__(self) -> str:
        if self.kind == "units":
            return ",".join(neuron_name(layer, unit) for layer, unit in self.units)
        return f"{self.kind}:{self.k}"


# ----------------------------------------------------------------------------- choosing units


def parse_units(text: str) -> UnitSpec:
    """"top-mns:K" | "random:K" | "L1N3,L2N7,..." -> UnitSpec (syntax only: the ranges need
    the network, `check_units`). ValueError with the allowed forms."""
    text = text.strip()
    kind, sep, count = text.partition(":")
    if sep:
        if kind not in ("top-mns", "random"):
            raise ValueError(f"--units {text!r}: unknown kind {kind!r}; give {UNIT_SYNTAX}")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--units {text!r}: K must be a positive integer")
        return UnitSpec(kind, int(count))
    units = []
    for name in text.split(","):
        match = re.fullmatch(r"L(\d+)N(\d+)", name.strip())
        if not match or int(match[1]) < 1:
            raise ValueError(f"--units {text!r}: {name.strip()!r} is not a unit name; give {UNIT_SYNTAX}")
        unit = (int(match[1]) - 1, int(match[2]))
        if unit in units:
            raise ValueError(f"--units {text!r}: {name.strip()} is named twice")
        units.append(unit)
    return UnitSpec("units", len(units), tuple(units))


def describe_widths(widths: Sequence[int]) -> str:
    """"2 hidden layers L1..L2 of 17, 17 units (34)"."""
    layers = len(widths)
    return f"{layers} hidden layer{'s' if layers > 1 else ''} L1..L{layers} of {', '.join(map(str, widths))} units ({sum(widths)})"


def check_units(spec: UnitSpec, widths: Sequence[int]) -> None:
    """ValueError naming the allowed range when `spec` does not fit hidden `widths`."""
    total = sum(widths)
    if spec.kind != "units":
        if not 1 <= spec.k <= total:
            raise ValueError(f"--units {spec}: K must be in 1..{total}, the actor's hidden units ({describe_widths(widths)})")
        return
    for layer, unit in spec.units:
        name = neuron_name(layer, unit)
        if layer == len(widths):
            raise ValueError(
                f"--units: {name} is in L{layer + 1}, the output layer (the policy logits), which cannot be ablated; "
                f"the actor has {describe_widths(widths)}"
            )
        if layer > len(widths):
            raise ValueError(f"--units: no layer L{layer + 1}; the actor has {describe_widths(widths)}")
        if unit >= widths[layer]:
            raise ValueError(f"--units: no unit {name}; layer L{layer + 1} has units L{layer + 1}N0..L{layer + 1}N{widths[layer] - 1}")


def split_layers(flat: np.ndarray, widths: Sequence[int]) -> list[np.ndarray]:
    """[..., sum(widths)] -> [[..., width_i] per hidden layer]."""
    return np.split(np.asarray(flat), np.cumsum(widths)[:-1], axis=-1)


def named_masks(units: Sequence[tuple], widths: Sequence[int]) -> list[np.ndarray]:
    """bool[units_i] per hidden layer: the (layer, unit) pairs."""
    masks = [np.zeros(w, bool) for w in widths]
    for layer, unit in units:
        masks[layer][unit] = True
    return masks


def top_mns_masks(mns, widths: Sequence[int], k: int) -> list[np.ndarray]:
    """bool[..., units_i] per hidden layer: the k hidden units of highest MNS, over all
    layers together (ties: lower layer, then lower unit first). mns f[..., neurons] in
    `CMNIResult` order: the hidden neurons first (the outputs, if present, are ignored)."""
    hidden = np.asarray(mns, np.float64)[..., : sum(widths)]
    if not 1 <= k <= hidden.shape[-1]:
        raise ValueError(f"k must be in 1..{hidden.shape[-1]}, got {k}")
    order = np.argsort(-hidden, axis=-1, kind="stable")[..., :k]
    flat = np.zeros(hidden.shape, bool)
    np.put_along_axis(flat, order, True, axis=-1)
    return split_layers(flat, widths)


def layer_counts(masks: Sequence) -> np.ndarray:
    """int[..., layers]: the ablated units per layer."""
    return np.stack([np.asarray(m).sum(-1) for m in masks], axis=-1)


def random_masks(key: jax.Array, counts: Sequence[int], widths: Sequence[int], draws: int) -> list[np.ndarray]:
    """bool[draws, units_i] per hidden layer: in draw d, `counts[i]` units of layer i drawn
    uniformly without replacement (`mirror.agents.ablation.random_ablation` with key
    fold_in(key, d))."""
    counts = [int(c) for c in counts]
    keys = jax.vmap(lambda d: jax.random.fold_in(key, d))(jnp.arange(draws))
    return [np.asarray(m) for m in jax.vmap(lambda k: random_ablation(k, counts, widths))(keys)]


def network_random_masks(key: jax.Array, counts: np.ndarray, widths: Sequence[int], draws: int) -> list[np.ndarray]:
    """bool[draws, 2, units_i]: `random_masks` for each network's counts int[2, layers]
    from the same key (the same draw in both networks)."""
    per = [random_masks(key, c, widths, draws) for c in np.asarray(counts)]
    return [np.stack([p[i] for p in per], axis=1) for i in range(len(widths))]


def unit_names(masks: Sequence) -> list[str]:
    """The names of one mask's units (bool[units_i] per layer), layer by layer."""
    return [neuron_name(i, int(u)) for i, m in enumerate(masks) for u in np.flatnonzero(np.asarray(m))]


# ----------------------------------------------------------------------------- the ablated agents


def ablation_values(params, rows, mode: str, activation: str = "relu") -> list[jax.Array]:
    """f32[networks, units_i] per hidden layer: each network's value for its ablated units.
    params leaves [networks, ...]; rows [networks, rows, 3W+4] (model inputs; only read for
    mode "mean": each unit's mean activation over its network's rows)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "zero":
        lead = params["output"]["bias"].shape[:-1]
        return [jnp.zeros(lead + (w,), jnp.float32) for w in layer_widths(params)]
    x = jnp.asarray(rows).astype(jnp.float32)  # stored network inputs (`mirror.env.seat.policy_rows`)
    return jax.vmap(lambda p, r: mean_activations(p, r, activation))(params, x)


def ablated_policy(ablate: Sequence[jax.Array], value: Sequence[jax.Array], activation: str, view: str = "seat"):
    """A `mirror.rl.turns.Policy` of one network with units `ablate[i]` of hidden layer i
    fixed at `value[i]`; it reads its views under `view` like `mirror.rl.ppo.policy_logits`.
    Its value output is 0 (nothing bootstraps from it)."""

    def policy(params, obs, player, central=None):
        logits = ablated_logits(params, policy_input(obs, view), ablate, value, activation)
        return logits, jnp.zeros(logits.shape[:-1], jnp.float32)

    return policy


def ablated_agents(params, ablate, value, activation: str, *, greedy: bool = False, shared: bool = False, view: str = "seat"):
    """The `Decide` of both players: Frog's network (index 0 of every leading axis) plays
    Frog, Toad's (1) Toad, each sampling from its ablated logits as in training
    (`mirror.rl.turns.agent`). `shared`: one network plays both (index 0 only)."""

    def one(i):
        pick = lambda tree: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
        return agent(ablated_policy(pick(ablate), pick(value), activation, view), pick(params), greedy)

    return one(0) if shared else per_player(one(0), one(1))


def _evaluate_masks(params, masks, values, env_params, key, *, games, turns, activation, greedy, shared, batch, view):
    def one(mask):
        out = evaluate(ablated_agents(params, mask, values, activation, greedy=greedy, shared=shared, view=view), env_params, key, games, turns)
        return {k: out[k] for k in RATES + ("episodes",)}

    return jax.lax.map(one, masks, batch_size=batch)


_evaluate_masks_jit = jax.jit(_evaluate_masks, static_argnames=("games", "turns", "activation", "greedy", "shared", "batch", "view"))


def evaluate_ablations(
    params, masks, values, env_params: EnvParams, key: jax.Array, *, games: int, turns: int, activation: str = "relu",
    greedy: bool = False, shared: bool = False, view: str = "seat",
) -> dict:  # fmt: skip
    """Every ablation in the same games: {rate: f64[ablations], "episodes": int[ablations]}.

    params leaves [2, ...] (Frog's, Toad's network); masks bool[ablations, 2, units_i] per
    hidden layer (all False: the intact agents); values f32[2, units_i] per layer
    (`ablation_values`); `games` x `turns` from turn 0 with `key` (`evaluate`)."""
    count = int(np.shape(masks[0])[0])
    batch = max(1, min(count, MAX_BATCH_GAMES // games))
    out = _evaluate_masks_jit(
        jax.tree.map(jnp.asarray, params), [jnp.asarray(m, bool) for m in masks], [jnp.asarray(v, jnp.float32) for v in values],
        env_params, key, games=games, turns=turns, activation=activation, greedy=greedy, shared=shared, batch=batch, view=view,
    )  # fmt: skip
    return {k: np.asarray(v, np.float64 if k != "episodes" else np.int64) for k, v in out.items()}


def no_masks(widths: Sequence[int], ablations: int = 1) -> list[np.ndarray]:
    """bool[ablations, 2, units_i] per layer, all False."""
    return [np.zeros((ablations, 2, w), bool) for w in widths]


def rates_at(rates: dict, index) -> dict:
    """One ablation's (or a slice of ablations') values of `evaluate_ablations`' result."""
    return {k: v[index] for k, v in rates.items()}


def summarise_draws(rates: dict) -> dict:
    """{"mean": {rate: x}, "sd": {rate: x}, "finite": {rate: n}} over draws (NaN draws left
    out; sd with ddof 1, NaN for fewer than 2 finite draws)."""
    out = {"mean": {}, "sd": {}, "finite": {}}
    for k in RATES:
        v = np.asarray(rates[k], np.float64)
        v = v[np.isfinite(v)]
        out["mean"][k] = float(v.mean()) if v.size else float("nan")
        out["sd"][k] = float(v.std(ddof=1)) if v.size > 1 else float("nan")
        out["finite"][k] = int(v.size)
    return out


def ablation_gap(top: float, random) -> float:
    """The drop under the top-MNS ablation minus the mean drop under random ones,
    (intact - top) - mean_d (intact - random_d) = mean_d random_d - top, over the finite
    draws (NaN when there are none or the top-MNS rate is NaN)."""
    random = np.asarray(random, np.float64)
    random = random[np.isfinite(random)]
    if not random.size or not np.isfinite(top):
        return float("nan")
    return float(np.mean(random) - top)


# ----------------------------------------------------------------------------- the test of one set of units


def ablation_test(
    params, spec: UnitSpec, values, env_params: EnvParams, key: jax.Array, *, games: int, turns: int, mns=None,
    draws: int = 0, draw_key: jax.Array | None = None, activation: str = "relu", greedy: bool = False, shared: bool = False,
    view: str = "seat",
) -> dict:  # fmt: skip
    """The intact agents, the ablation `spec` asks for and (for top-mns and random) `draws`
    random ablations with the top-MNS units' count per layer, all in one program.

    params leaves [2, ...]; values from `ablation_values`; mns f[2, neurons] (probe set (a)
    MNS of each network; needed by top-mns and random). Returns {"intact": rates,
    "ablated": rates or None (random: None), "units": [names] per network (the ablated or
    top-MNS units), "counts": int[2, layers], "random": None or {"rates": {rate: [draws]},
    "units": [[names] per draw] (Frog's network), **summarise_draws}, "gap": {rate: x} or
    None (top-mns with draws)}."""
    widths = layer_widths(params)
    check_units(spec, widths)
    if spec.kind == "units":
        chosen = [np.broadcast_to(m, (2,) + m.shape) for m in named_masks(spec.units, widths)]
    else:
        if mns is None:
            raise ValueError(f"--units {spec} needs each network's MNS on probe set (a)")
        chosen = top_mns_masks(np.broadcast_to(np.asarray(mns), (2,) + np.shape(mns)[-1:]), widths, spec.k)
    if spec.kind == "random" and draws < 1:
        raise ValueError(f"--units {spec} needs at least one random draw")
    if spec.kind == "units":
        draws = 0
    counts = layer_counts(chosen)  # [2, layers]
    stacks = [no_masks(widths)]
    if spec.kind != "random":
        stacks.append([m[None] for m in chosen])
    if draws:
        drawn = network_random_masks(draw_key, counts, widths, draws)
        stacks.append(drawn)
    masks = [np.concatenate([s[i] for s in stacks]) for i in range(len(widths))]
    rates = evaluate_ablations(params, masks, values, env_params, key, games=games, turns=turns, activation=activation, greedy=greedy, shared=shared, view=view)
    first_random = 1 if spec.kind == "random" else 2
    out = {
        "intact": rates_at(rates, 0),
        "ablated": None if spec.kind == "random" else rates_at(rates, 1),
        "units": [unit_names([m[n] for m in chosen]) for n in range(2)],
        "counts": counts,
        "random": None,
        "gap": None,
    }
    if draws:
        random_rates = {k: v[first_random:] for k, v in rates.items()}
        out["random"] = {
            "rates": random_rates,
            "units": [unit_names([m[d, 0] for m in drawn]) for d in range(draws)],
            **summarise_draws(random_rates),
        }
        if spec.kind == "top-mns":
            out["gap"] = {k: ablation_gap(out["ablated"][k], random_rates[k]) for k in RATES}
    return out


def ablation_curve(
    params, mns, values, ks: Sequence[int], env_params: EnvParams, key: jax.Array, draw_key: jax.Array, *, games: int,
    turns: int, draws: int, activation: str = "relu", greedy: bool = False, shared: bool = False, view: str = "seat",
) -> dict:  # fmt: skip
    """The rates against K: for each K in `ks` the top-K MNS units and `draws` random draws
    with their count per layer, all in one program (draw d of every K from fold_in(draw_key, d)).

    Returns {"k": int[len(ks)], "intact": rates, "top_mns": {rate: [len(ks)]},
    "random_mean", "random_sd": {rate: [len(ks)]}, "gap": {rate: [len(ks)]} (`ablation_gap`),
    "counts": int[len(ks), 2, layers]}."""
    widths = layer_widths(params)
    ks = [int(k) for k in ks]
    mns = np.broadcast_to(np.asarray(mns), (2,) + np.shape(mns)[-1:])
    for k in ks:
        check_units(UnitSpec("top-mns", k), widths)
    stacks, counts = [no_masks(widths)], []
    for k in ks:
        top = top_mns_masks(mns, widths, k)
        counts.append(layer_counts(top))
        stacks.append([m[None] for m in top])
        if draws:
            stacks.append(network_random_masks(draw_key, counts[-1], widths, draws))
    masks = [np.concatenate([s[i] for s in stacks]) for i in range(len(widths))]
    rates = evaluate_ablations(params, masks, values, env_params, key, games=games, turns=turns, activation=activation, greedy=greedy, shared=shared, view=view)
    intact = rates_at(rates, 0)
    per_k = 1 + draws
    out = {"k": np.asarray(ks), "intact": intact, "counts": np.stack(counts)}
    out["top_mns"] = {r: np.asarray([rates[r][1 + i * per_k] for i in range(len(ks))]) for r in RATES}
    summaries = [summarise_draws(rates_at(rates, slice(2 + i * per_k, (i + 1) * per_k + 1))) for i in range(len(ks))]
    out["random_mean"] = {r: np.asarray([s["mean"][r] for s in summaries]) for r in RATES}
    out["random_sd"] = {r: np.asarray([s["sd"][r] for s in summaries]) for r in RATES}
    out["gap"] = {
        r: np.asarray([ablation_gap(out["top_mns"][r][i], rates[r][2 + i * per_k : (i + 1) * per_k + 1]) for i in range(len(ks))])
        for r in RATES
    }
    return out
