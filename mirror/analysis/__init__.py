"""The paper's analyses (spec §7, paper §5-6), vectorised over checkpoints and members.

- `groups`: which test rows feed which scenario mean; the published leak;
- `probe`: probe set (a) in memory from a key (`mirror.probe_set`);
- `cmni`: CMNI, MNE, per-layer CMNI and per-neuron mu / dFrog / dToad / MNS for every
  model at once; permutation and random-initialisation null baselines;
- `moments`: mean, variance, skewness, excess kurtosis per neuron and scenario;
- `neurons`: mirror candidates and differentiating neurons;
- `circuits`: weight z-scores and distress-activated circuits;
- `seeds`: verdicts over seeds: the rise-and-fall drop with a bootstrap CI, trained
  against random initialisation;
- `significance`: per-neuron permutation tests and neuron roles;
- `variants`: the scale-free and composition-matched CMNIs;
- `onpolicy`: the CMNI where every checkpoint has its own probe rows (RL probe set (b));
- `hypotheses`: the registered tests of the theory experiment;
- `analyse`: every analysis of a stack of checkpoints, in memory.

Run directories, figures and reports are `mirror.runs`' job.
"""
