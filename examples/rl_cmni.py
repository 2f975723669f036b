"""Self-play PPO in Frog and Toad, then each agent's CMNI against its random-init null.

    uv run python examples/rl_cmni.py                          # about 2 minutes on a 2-core CPU
    MIRROR_EXAMPLE_SMALL=1 uv run python examples/rl_cmni.py   # a smoke run (tests/test_examples.py)
"""

import os

import jax
import jax.numpy as jnp

import mirror

small = os.environ.get("MIRROR_EXAMPLE_SMALL") == "1"
members = 4
env = mirror.EnvParams(dependency=1.0)  # D = 1: the scroll follows both players (spec §3)
rl = mirror.RLConfig(num_envs=16 if small else 256, num_steps=16 if small else 64, updates=2 if small else 150, checkpoint_every=1)
out = jax.jit(mirror.make_train(rl, env, members=members))(jax.random.key(0))  # 4 seeds in one program
inputs, groups = mirror.probe_set(env, rows=500 if small else 4000, key=jax.random.key(1), view=rl.view)  # probe set (a), as the actor sees it
scores = mirror.cmni(out.params, inputs, groups).cmni  # float32[members]
null = mirror.init_null(jax.random.key(2), rl.hidden, inputs, groups, seeds=8 if small else 32, kernel_init="actor_critic")
p = mirror.empirical_p_value(scores, null)  # float32[members]: rank among the untrained actors
episode_return = jnp.nanmean(out.metrics["return_per_player"][:, -10:], axis=(1, 2))  # the last 10 updates
for m in range(members):
    print(f"member {m}: return {episode_return[m]:6.2f}  CMNI {scores[m]:.4f}  p(init null) {p[m]:.3f}")
print(f"random init: CMNI {null.mean():.4f} +- {null.std():.4f} over {null.size} actors")
