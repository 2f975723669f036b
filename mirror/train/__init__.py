"""Supervised training of the paper's agents (spec §8), on device, as populations.

- `loop.make_train(config, train_split, members) -> Trainer`: jitted `epoch` (shuffle +
  `lax.scan` over minibatches, mapped over members) and `evaluate`;
- `run.train_run(config, run_dir, dataset)`: the epoch loop with Orbax checkpoints,
  early stopping per member, resume and test metrics (`mirror train`);
- `checkpoints.load_run(run_dir)` / `restore_stacked(run_dir)`: every checkpoint of a
  run stacked along a leading axis, for the analyses.
"""
