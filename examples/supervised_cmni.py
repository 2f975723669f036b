"""The paper's supervised pipeline in memory: a dataset, a population of MLPs, their CMNI.

    uv run python examples/supervised_cmni.py                          # about a minute on a 2-core CPU
    MIRROR_EXAMPLE_SMALL=1 uv run python examples/supervised_cmni.py   # a smoke run (tests/test_examples.py)
"""

import os

import jax

import mirror

small = os.environ.get("MIRROR_EXAMPLE_SMALL") == "1"
env = mirror.EnvParams()
data = mirror.dataset(env, rows=20_000 if small else 100_000, key=jax.random.key(0))  # numpy arrays over the rows
train_rows = data["splits"] == 0  # 0 train, 1 validation
model = mirror.ModelConfig(hidden_layers=2, width=17)  # the paper's 2 x 17 MLP
settings = mirror.TrainConfig(lr=1e-4, epochs=1 if small else 10, population_seeds=(0, 1, 2, 3))
out = mirror.make_supervised_train(model, settings, (data["inputs"][train_rows], data["labels"][train_rows]))()
inputs, groups = mirror.probe_set(env, rows=500 if small else 4000, key=jax.random.key(1))
scores = mirror.cmni(out.params, inputs, groups).cmni  # float32[members]
p_perm = mirror.empirical_p_value(scores, mirror.permutation_null(0, out.params, inputs, groups, permutations=200))
null = mirror.init_null(jax.random.key(2), model.widths, inputs, groups, seeds=8 if small else 32)
p_init = mirror.empirical_p_value(scores, null)
for m, member in enumerate(out.members):
    print(f"seed {member.seed}: loss {out.loss[-1, m]:.4f}  CMNI {scores[m]:.4f}  p(permutation) {p_perm[m]:.3f}  p(init) {p_init[m]:.3f}")
print(f"random init: CMNI {null.mean():.4f} +- {null.std():.4f} over {null.size} networks")
