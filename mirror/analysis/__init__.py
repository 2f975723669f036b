"""The paper's analyses (spec §7, paper §5-6), vectorised over checkpoints and members.

- `groups`: which test rows feed which scenario mean; the published leak;
- `cmni`: CMNI, MNE, per-layer CMNI and per-neuron mu / dFrog / dToad / MNS for every
  model at once; permutation and random-initialisation null baselines;
- `moments`: mean, variance, skewness, excess kurtosis per neuron and scenario;
- `neurons`: mirror candidates and differentiating neurons;
- `circuits`: weight z-scores and distress-activated circuits;
- `seeds`: verdicts over seeds: the rise-and-fall drop with a bootstrap CI, trained
  against random initialisation;
- `analyse`, `report`, `figures`: every analysis of a stack of checkpoints, and its files;
- `run_analysis`: `analyse_run(run_dir, out_dir)`, the whole analysis of a run directory
  (what `mirror cmni` (`command`) and `mirror run` call);
- `live`: a cheap per-epoch CMNI of a fresh checkpoint, for live tracking;
- RL runs: `onpolicy` (CMNI where every checkpoint has its own probe rows),
  `rl_files` (reading rl_run.json, rl_metrics.jsonl, baselines.json), `rl_figures`
  (learning curve, CMNI on both probe sets, help rate against D for sweeps);
  `ablation` (actor units fixed at their mean or zero in the report games: `mirror ablate`,
  `ablate_command`).
"""
