"""`rl.soo_weight`: the self/other overlap loss (`mirror.rl.overlap`), its plumbing through
configs, populations and sweeps, and what it does to a network."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml
from test_soo_pairs import random_views

from mirror.agents.mlp import MLP
from mirror.base.errors import ConfigError
from mirror.env.pairs import distress_mirror
from mirror.env.seat import policy_input
from mirror.rl import RLConfig, make_trainer
from mirror.rl.config import RLConfigError, make_config
from mirror.rl.overlap import SOO_EPS, hidden_activations, overlap_distance
from mirror.runs.config import load_config
from mirror.rl.population import rl_members
from mirror.runs.rl_run import update_lines
from mirror.sweep.plan import populations, rl_member_of
from mirror.sweep.spec import load_sweep

SMALL = dict(num_envs=16, num_steps=8, updates=2, checkpoint_every=2, num_minibatches=2, update_epochs=2, critic="central")


def _pairs(key, rows=3000):
    views = np.concatenate([random_views(jax.random.fold_in(key, p), rows // 2, p)[0] for p in (0, 1)])
    mirrored, pairable = distress_mirror(jnp.asarray(views))
    return jnp.asarray(views), mirrored, pairable.astype(jnp.float32)


def _actor(key, widths=(8, 8)):
    return MLP(widths).init(key, jnp.zeros((1, 100)))["params"]


def test_the_distance_is_the_scaled_mean_squared_pair_difference():
    """Differential: the distance against a plain numpy computation from the activations."""
    views, mirrored, weights = _pairs(jax.random.key(0))
    actor = _actor(jax.random.key(1))
    got = float(overlap_distance(actor, views, mirrored, weights, "relu"))
    a = [np.asarray(x, np.float64) for x in hidden_activations(actor, views, "relu")]
    b = [np.asarray(x, np.float64) for x in hidden_activations(actor, mirrored, "relu")]
    w = np.asarray(weights, np.float64)
    terms = [((w[:, None] * (x - y) ** 2).sum(0) / w.sum()) / (x.var(0) + SOO_EPS) for x, y in zip(a, b)]
    assert got == pytest.approx(np.concatenate(terms).mean(), rel=1e-4)
    assert got > 0.01
    # No pairs, no distance; a view's own mirror (not pairable) adds nothing.
    assert float(overlap_distance(actor, views, mirrored, jnp.zeros_like(weights), "relu")) == 0.0
    assert float(overlap_distance(actor, views, views, weights, "relu")) == 0.0


def test_shrinking_the_activations_does_not_shrink_the_distance():
    """The scale is each unit's own spread: with zero biases (the init), scaling the first
    kernel by 0.1 scales every hidden activation of a ReLU network by 0.1, the raw squared
    distance by 0.01, and leaves the distance unchanged."""
    views, mirrored, weights = _pairs(jax.random.key(2))
    actor = _actor(jax.random.key(3))
    small = {**actor, "hidden_0": {**actor["hidden_0"], "kernel": actor["hidden_0"]["kernel"] * 0.1}}
    base = float(overlap_distance(actor, views, mirrored, weights, "relu"))
    assert float(overlap_distance(small, views, mirrored, weights, "relu")) == pytest.approx(base, rel=1e-3)
    raw = [float(np.mean((np.asarray(x) - np.asarray(y)) ** 2)) for p in (actor, small)
           for x, y in [(hidden_activations(p, views, "relu")[1], hidden_activations(p, mirrored, "relu")[1])]]  # fmt: skip
    assert raw[1] == pytest.approx(0.01 * raw[0], rel=1e-3)


@pytest.mark.slow
def test_the_loss_lowers_the_distance_of_a_toy_network_without_shrinking_it():
    views, mirrored, weights = _pairs(jax.random.key(4))
    actor = _actor(jax.random.key(5))
    loss = jax.jit(lambda p: overlap_distance(p, views, mirrored, weights, "relu"))
    grad = jax.jit(jax.grad(lambda p: overlap_distance(p, views, mirrored, weights, "relu")))
    opt = optax.adam(1e-2)
    state, params = opt.init(actor), actor
    before = float(loss(params))
    for _ in range(150):
        updates, state = opt.update(grad(params), state)
        params = optax.apply_updates(params, updates)
    after = float(loss(params))
    assert after < 0.25 * before, (before, after)
    spread = [float(np.mean(np.var(np.asarray(a), 0))) for a in hidden_activations(params, views, "relu")]
    assert min(spread) > 1e-3  # the units still vary: the distance fell, not the activations' size


@pytest.mark.slow
def test_a_weight_zero_member_of_an_overlap_program_trains_as_without_it():
    """soo_weight 0 given (traced) puts the loss in the program at weight 0: the params come
    out bit for bit as those of the program without the loss; a weight above 0 changes them."""
    config = RLConfig(**SMALL)
    key = jax.random.key(0)

    def train(weight):
        trainer = make_trainer(config, soo_weight=weight)
        return jax.jit(lambda k, w: trainer.run(trainer.init(k), 2))(key, weight)

    plain_trainer = make_trainer(config)
    plain, _ = jax.jit(lambda k: plain_trainer.run(plain_trainer.init(k), 2))(key)
    zero, metrics = train(jnp.float32(0.0))
    chex.assert_trees_all_equal(zero.params, plain.params)
    assert metrics["soo_distance"].shape == (2,) and np.all(np.asarray(metrics["soo_distance"]) > 0)
    weighted, _ = train(jnp.float32(3.0))
    actor = lambda r: np.asarray(r.params["actor"]["hidden_0"]["kernel"])  # noqa: E731
    assert np.abs(actor(weighted) - actor(plain)).max() > 1e-4
    # The program without the loss is the default: no distance metric, the same params.
    again, plain_metrics = jax.jit(lambda k: plain_trainer.run(plain_trainer.init(k), 2))(key)
    assert "soo_distance" not in plain_metrics
    chex.assert_trees_all_equal(again.params, plain.params)


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"soo_weight": -0.5}, "rl.soo_weight must be a number >= 0"),
        ({"soo_weight": 1.0, "view": "paper"}, "rl.soo_weight must be 0 unless rl.view is seat"),
        ({"soo_weight": 1.0, "transformer": (1, 16, 2, 2)}, "rl.soo_weight must be 0 unless rl.view is seat and the torso an MLP"),
    ],
)
def test_bad_soo_weights_name_the_field(fields, words):
    with pytest.raises(RLConfigError, match=words.replace(".", r"\.")):
        make_config(**fields)


def test_population_soo_weights_are_members_and_are_checked():
    def config(**rl):
        return load_config(None, {"name": "soo", "model": {"hidden_layers": 1, "width": 4}, "rl": rl})

    members = rl_members(config(population_seeds=[0, 1], population_soo_weights=[0.0, 0.3]))
    assert [m.soo_weight for m in members] == [0.0, 0.3]
    assert "soo_weight" not in members[0].to_dict() and members[1].to_dict()["soo_weight"] == 0.3
    with pytest.raises(ConfigError, match=r"rl\.population_soo_weights must be a list of numbers >= 0"):
        rl_members(config(population_soo_weights=[0.0, -1.0]))
    with pytest.raises(ConfigError, match=r"rl\.population_soo_weights must be all 0 unless rl\.view is seat"):
        rl_members(config(population_soo_weights=[0.0, 1.0], view="paper"))


def test_soo_weight_is_a_sweep_axis(tmp_path):
    values = {
        "name": "soo-sweep",
        "model": {"hidden_layers": 1, "width": 4},
        "rl": {"num_envs": 8, "num_steps": 4, "updates": 4, "checkpoint_every": 2, "num_minibatches": 2},
        "sweep": {"mode": "rl", "grid": {"rl.soo_weight": [0.0, 0.3], "seed": [0, 1]}},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(values))
    sweep = load_sweep(path)
    (population,) = populations(sweep.trials, sweep.max_population)
    assert population.config.rl["population_soo_weights"] == [0.0, 0.0, 0.3, 0.3]
    assert "soo_weight" not in rl_member_of(sweep.trials[0]) and rl_member_of(sweep.trials[3])["soo_weight"] == 0.3
    assert [m.soo_weight for m in rl_members(population.config)] == [0.0, 0.0, 0.3, 0.3]


def test_the_distance_is_an_update_line_when_the_program_has_it():
    ppo = RLConfig(**SMALL)
    metrics = {k: np.zeros((2, 2)) for k in ("episodes", "entropy", "policy_loss", "value_loss", "explained_variance", "approx_kl",
                                                "help_rate", "help_when_partner_distressed")}  # fmt: skip
    metrics["return_per_player"] = np.zeros((2, 2, 2))
    assert "soo_distance" not in update_lines(metrics, 0, ppo, 2, 0.0, 1.0)[0]
    metrics["soo_distance"] = np.asarray([[0.5, 0.4], [0.3, 0.2]])
    lines = update_lines(metrics, 0, ppo, 2, 0.0, 1.0)
    assert [line["soo_distance"] for line in lines] == [[0.5, 0.3], [0.4, 0.2]]


def test_the_policy_input_of_a_pair_differs_only_where_the_pair_does():
    views, mirrored, weights = _pairs(jax.random.key(6), 400)
    changed = np.asarray(policy_input(views) != policy_input(mirrored))
    assert np.all(changed.sum(1)[np.asarray(weights) == 1] == 4) and not changed[np.asarray(weights) == 0].any()
