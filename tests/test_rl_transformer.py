"""The transformer as the RL actor-critic torso: `model.kind: transformer` in
`mirror rl`. Shapes and CMNI neurons (value head excluded), the checkpoints' params read
as a supervised transformer, populations, an end-to-end run with its CMNI.

Every PPO program with a transformer inside costs tens of CPU seconds to compile, so the
file builds one run (a population of two) and one lone member. Resume is the MLP's code
path (tests/test_rl_run.py); a transformer resume test (bit-identical, it passed) was left
out for its cost: two more `rl_run`s."""

import csv
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import RL_DEFAULT_GAME, overrides, rl_values

from mirror.agents.actor_critic import cmni_params
from mirror.agents.transformer import Transformer, init_transformer_params
from mirror.agents.transformer_actor_critic import TransformerActorCritic, init_transformer_actor_critic
from mirror.analysis.cmni import ACTOR_CRITIC_INIT, init_transformer_batch, neuron_layout
from mirror.cli import main
from mirror.env.constants import obs_size
from mirror.rl.config import RLConfig, RLConfigError, make_config, rl_settings
from mirror.rl.population import PopulationTrainer
from mirror.rl.ppo import init_params, make_policy, policy_input, policy_logits
from mirror.runs.checkpoints import load_run
from mirror.runs.config import load_config
from mirror.runs.rl_run import rl_config_hash

ARCH = (1, 8, 2, 2)  # depth, d_model, heads, mlp_ratio: 16 block MLP units
TORSO = {"kind": "transformer", "transformer": dict(zip(("depth", "d_model", "heads", "mlp_ratio"), ARCH))}
# Two updates, a checkpoint after each; everything else is conftest's tiny RL run.
TWO_UPDATES = {"updates": 2, "checkpoint_every": 1}


def transformer_values(cache: Path, **rl) -> dict:
    return {**rl_values(cache, **{**TWO_UPDATES, **rl}), "model": TORSO}


def own_views(key, rows: int, width: int = 32) -> jax.Array:
    """int8[rows, 3W+4] views with every code in range (ground 0-2, players 0-9, flies 0/3, energy 0-20)."""
    k = jax.random.split(key, 4)
    ground = jax.random.randint(k[0], (rows, width), 0, 3)
    players = jax.random.randint(k[1], (rows, width), 0, 10)
    flies = 3 * jax.random.randint(k[2], (rows, width), 0, 2)
    stats = jnp.concatenate([jnp.zeros((rows, 1), jnp.int32), jax.random.randint(k[3], (rows, 1), 0, 21), jnp.zeros((rows, 2), jnp.int32)], axis=1)
    return jnp.concatenate([ground, players, flies, stats], axis=1).astype(jnp.int8)


# --- the network -----------------------------------------------------------------------


def test_transformer_actor_critic_shapes_heads_and_cmni_neurons():
    config = RLConfig(transformer=ARCH)
    obs = own_views(jax.random.key(1), 5)

    @jax.jit
    def forward(key, obs):
        """One compiled program (eager Flax would compile op by op): the actor-critic and
        the supervised Transformer on its CMNI layers."""
        params = init_params(config, key, obs_size(32))
        logits, value = make_policy(config)(params, obs, jnp.zeros(5, jnp.int32))
        x = policy_input(obs)
        _, _, own = TransformerActorCritic(*ARCH, role="actor").apply({"params": params["actor"]}, x)
        read_logits, read = Transformer(*ARCH).apply({"params": cmni_params(params)}, x)
        return params, logits, value, own, read_logits, read, policy_logits(cmni_params(params), obs[0], (), "relu")

    params, logits, value, own, read_logits, read, one = forward(jax.random.key(0), obs)
    assert logits.shape == (5, 4) and value.shape == (5,)
    # The heads: orthogonal kernels (logits scaled 0.01, value 1), zero biases.
    out, val = params["actor"]["output"], params["critic"]["value"]
    np.testing.assert_allclose(out["kernel"].T @ out["kernel"], 1e-4 * np.eye(4), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(val["kernel"]), 1.0, rtol=1e-5)
    assert not out["bias"].any() and not val["bias"].any()
    # CMNI neurons: the actor (no critic, no value head) IS a supervised transformer's tree ...
    counted = cmni_params(params)
    supervised = jax.eval_shape(lambda k: init_transformer_params(k, num_inputs=obs_size(32), **dict(zip(("depth", "d_model", "heads", "mlp_ratio"), ARCH))), jax.random.key(2))
    assert "value" in params["critic"] and "value" not in counted and "output" not in params["critic"]
    assert jax.tree.map(np.shape, counted) == jax.tree.map(np.shape, supervised)
    # ... whose neurons are the block's 16 pooled MLP units and the 4 logits (no value),
    layer, _ = neuron_layout(counted)
    assert np.bincount(layer).tolist() == [16, 4]
    assert [a.shape for a in own] == [(5, 16), (5, 4)]
    # and the supervised Transformer on it acts exactly as the actor-critic did
    for a, b in zip(own, read):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(read_logits, logits)
    np.testing.assert_allclose(one, logits[0], rtol=1e-6, atol=1e-7)  # `mirror play` asks one view at a time


# --- the config ------------------------------------------------------------------------


def test_rl_takes_the_torso_from_model_kind_and_refuses_rl_transformer(tmp_path):
    ppo = rl_settings(load_config(None, transformer_values(tmp_path))).ppo
    assert ppo.transformer == ARCH
    assert rl_settings(load_config(None, rl_values(tmp_path))).ppo.transformer == ()  # the MLP torso
    with pytest.raises(RLConfigError, match=r"rl.transformer is not an rl field: set model.kind and model.transformer"):
        load_config(None, {**rl_values(tmp_path), "rl": {"transformer": list(ARCH)}})
    with pytest.raises(RLConfigError, match=r"rl.transformer must be empty or 4 positive integers"):
        make_config(transformer=(1, 8, 3, 2))  # 3 heads do not divide d_model 8


def test_mlp_rl_config_hash_changes_only_with_the_training():
    """What `--resume` checks. The critic settings of the runs before them (critic shared,
    clipped value loss, no normalisation) hash as those runs did (before the transformer
    torso too); the new defaults, written or not, train otherwise and hash otherwise."""
    legacy = {"critic": "shared", "clip_value": True, "value_norm": False, "view": "paper"}
    assert rl_config_hash(load_config(None, {"rl": {**TWO_UPDATES, **legacy}})) == "9fad2218558763b8"
    # the separate critic's runs before rl.view: their hash, once `view: paper` is written
    before_view = {"critic": "separate", "clip_value": False, "value_norm": True, "view": "paper"}
    assert rl_config_hash(load_config(None, {"rl": {**TWO_UPDATES, **before_view}})) == "c65a8637df51e076"
    default = rl_config_hash(load_config(None, {"rl": TWO_UPDATES}))
    assert default not in ("c65a8637df51e076", "9fad2218558763b8")  # the seat view trains otherwise
    written = {"critic": "separate", "clip_value": False, "value_norm": True, "view": "seat"}
    assert rl_config_hash(load_config(None, {"rl": {**TWO_UPDATES, **written}})) == default
    assert rl_config_hash(load_config(None, {"rl": {**TWO_UPDATES, "critic": "shared"}})) not in (default, "9fad2218558763b8")


# --- a run -------------------------------------------------------------------------------


# A population of two: seeds 0 and 3 with their own learning rates.
PAIR = {"population_seeds": [0, 3], "population_lrs": [2.5e-3, 3e-3]}


@pytest.fixture(scope="module")
def transformer_rl_run(tmp_path_factory, tiny_dataset, dataset_cache) -> Path:
    """`mirror rl` end to end (training, CMNI with the random-init null, report) with the
    transformer torso, a population of two (PAIR)."""
    run_dir = tmp_path_factory.mktemp("rl_transformer") / "run"
    values = transformer_values(dataset_cache, **PAIR)
    values["analysis"] = {**values["analysis"], "permutations": 0, "roles": "paper"}  # the permutation null: the supervised transformer's code
    assert main(["rl", "--config", RL_DEFAULT_GAME, "--run-dir", str(run_dir), *overrides(values)]) == 0
    return run_dir


def checkpoint_items(run_dir: Path) -> dict:
    """update -> {"params", "rl_state"} as host arrays."""
    import orbax.checkpoint as ocp

    from mirror.runs.checkpoints import open_rl_manager

    manager = open_rl_manager(run_dir, read_only=True)
    try:
        args = ocp.args.Composite(params=ocp.args.StandardRestore(), rl_state=ocp.args.StandardRestore())
        return {u: jax.tree.map(np.asarray, dict(manager.restore(u, args=args))) for u in manager.all_steps()}
    finally:
        manager.close()


@pytest.mark.slow
def test_rl_run_with_the_transformer_torso_writes_checkpoints_and_cmni(transformer_rl_run):
    run_dir = transformer_rl_run
    assert [m["widths"] for m in json.loads((run_dir / "members.json").read_text())] == [[16], [16]]  # the CMNI layer
    run = load_run(run_dir)  # what `mirror cmni` reads: the supervised transformer's tree
    assert run.epochs.tolist() == [1, 2]
    assert "position" in run.params and "value" not in run.params
    assert run.params["block_0"]["mlp_in"]["kernel"].shape == (2, 2, 8, 16)  # [checkpoints, networks, ...]
    with open(run_dir / "cmni.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2  # 2 checkpoints x 2 networks
    assert all(np.isfinite(float(r["cmni"])) for r in rows)  # the test split has every group
    assert all("cmni_onpolicy" in r for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rl"]["init_null"] == ACTOR_CRITIC_INIT
    assert [len(n["rows_per_group"]) for n in summary["rl"]["onpolicy"]] == [3, 3]


@pytest.mark.slow
def test_a_population_member_equals_its_run_alone(transformer_rl_run, dataset_cache):
    """Member 1 of the run's population (seed 3, lr 3e-3) after 2 updates is bit-identical,
    runner state and all (params with the value head, optimizer, games, key), to the same
    trial trained alone."""
    from mirror.runs.checkpoints import flatten_state

    alone = PopulationTrainer(load_config(None, transformer_values(dataset_cache, population_seeds=[3], population_lrs=[3e-3])))
    runner = alone.init()
    for _ in range(2):
        runner, _ = alone.interval(runner)
    single = jax.tree.map(np.asarray, flatten_state(runner))
    together = checkpoint_items(transformer_rl_run)[2]["rl_state"]
    assert sorted(single) == sorted(together) and any("value" in name for name in single)
    # Integers (games, keys, counts) bit for bit; floats to rounding. Under XLA's default
    # flags the floats are bit-identical too (checked by hand, 2026-12-07); the suite compiles
    # at optimisation level 0 (conftest.py), where the one- and two-member programs round
    # the attention's zero-gradient key biases differently and Adam carries that noise on
    # (largest difference 6e-8).
    for name, value in single.items():
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(value[0], together[name][1], rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(value[0], together[name][1], err_msg=name)
    assert not np.array_equal(together[sorted(together)[0]][0], together[sorted(together)[0]][1])


def test_actor_critic_init_null_draws_the_transformer_actor_critics_init():
    """The RL random-init null of a transformer run: fresh actor-critics' CMNI layers (the
    logits' orthogonal 0.01 init, not the supervised glorot one; no value head). In the whole
    suite it runs after the run's analysis above, which compiled the same init."""
    num_inputs = obs_size(32)
    like = jax.eval_shape(lambda k: init_transformer_actor_critic(k, ARCH, num_inputs=num_inputs), jax.random.key(0))
    batch = init_transformer_batch(jax.random.key(3), 2, like, num_inputs=num_inputs, kernel_init=ACTOR_CRITIC_INIT)
    assert "value" not in batch and batch["block_0"]["mlp_in"]["kernel"].shape == (2, 8, 16)
    for kernel in batch["output"]["kernel"]:
        np.testing.assert_allclose(kernel.T @ kernel, 1e-4 * np.eye(4), atol=1e-9)
    assert not np.array_equal(batch["position"][0], batch["position"][1])
