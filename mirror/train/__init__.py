"""Supervised training of the paper's agents (spec §8), on device, as populations.

- `config.TrainConfig`: the `train:` settings; `config.TrainSetup`: model + train + seed
  without a run;
- `loop.make_train(setup, train_split, members) -> Trainer`: jitted `epoch` (shuffle +
  `lax.scan` over minibatches, mapped over members) and `evaluate`;
- `population.Member`: who trains together; `losses`, `randomness`, `class_metrics`;
- `fit.make_supervised_train(model, train, split) -> train()`: a fixed number of epochs
  in memory (`mirror.make_supervised_train`).

The epoch loop with checkpoints, early stopping and resume is a run's job
(`mirror.runs.train_run`); `mirror.runs.checkpoints.load_run` reads a run back.
"""
