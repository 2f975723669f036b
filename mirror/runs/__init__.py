"""Run directories: everything that reads or writes a run or a config file, above the
pure library (env, agents, data, train, rl, analysis) and below the sweeps and commands.

config.py          the composed `Config` (YAML + `--section.field` overrides, validated)
train_run.py       a supervised run: the epoch loop with checkpoints, early stopping, resume
rl_run.py          an RL run: training intervals, checkpoints, probes, evaluation, resume
checkpoints.py     the checkpoints of both run kinds (`run_kind`), and `load_run` (every checkpoint stacked)
analysis.py        `analyse_run(run_dir, out_dir)`: the CMNI and neuron analyses of a run
rl_files.py        an RL run's JSON files (rl_run.json aside): metrics, baselines, summary
outputs.py, figures.py, rl_figures.py   what an analysis writes
report.py, rl_report.py   report.md of each kind of run (shared helpers in report.py)
tracking.py, live_tracking.py, live.py   Weights & Biases, and the live per-epoch CMNI
experiment.py, rl_experiment.py   `mirror run` / `mirror rl`: dataset -> training -> analysis -> report
watch.py           a trained run's agents, restored for `mirror play --agent`
ablation.py        a run's agents and probe rows under ablation (`mirror ablate`)
progress.py        progress bars
"""
