"""The analyses' settings (spec §7, paper §5-6): the `analysis:` section of a config."""

import dataclasses

from mirror.base.errors import ConfigError, require

# analysis.roles: per-neuron permutation tests (the default) or the paper-fitted thresholds
ROLE_METHODS = ("significance", "paper")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """CMNI and the neuron analyses (spec §7, paper §5-6)."""

    # Test rows per activation chunk: memory is models x hidden units x chunk_rows floats.
    # Up to ~2048 the float32 group means stay within 1e-6 of a float64 computation.
    chunk_rows: int = 512
    permutations: int = 200  # scenario-label permutations for the null p-value (0: skip)
    init_seeds: int = 32  # random initialisations for the untrained-network baseline (0: skip)
    # Reproduce the published leak (scenario id fed into input 98) in the CMNI itself.
    # Off: the CMNI is clean and the leaky value is still reported alongside (cmni_leak).
    leak_scenario: bool = False
    checkpoint: str = "best"  # checkpoint for neurons.csv and circuits: "best", "last" or an epoch number
    # roles: "paper" only. A neuron "responds" to Frog's (Toad's) distress when dFrog (dToad)
    # exceeds this fraction of the largest distress response in its layer; differentiating
    # neurons respond to exactly one. 0.15 reproduces the paper's Table 4 classification.
    response_fraction: float = 0.15
    # Circuits count an edge from a mirror or differentiating neuron when its weight's
    # z-score (within its weight matrix) is at least this (paper Tables 7-10: 0.5 keeps
    # L1N11 -> L2N7 at z 0.98 and drops L1N11 -> L2N0 at z 0.33).
    circuit_z: float = 0.5
    # A hub belongs to a circuit only if those counted edges carry at least this share of
    # all its positive input from the first hidden layer (the paper's hubs: ~all of it).
    circuit_share: float = 0.5
    # How neurons get their roles (mirror, differentiating, other), `mirror.analysis.significance`:
    # "significance": per-neuron permutation p-values (analysis.permutations of them), Benjamini-
    # Hochberg at `alpha`, mirror calibrated against the analysis.init_seeds random-init units
    # (so it needs both); "paper": the thresholds fitted to the paper's Table 4 (response_fraction).
    roles: str = "significance"
    alpha: float = 0.05  # false discovery rate of the per-neuron tests
    # cmni_matched's cells: oracle label x this many energy bins, edges at the baseline
    # group's energy quantiles (`mirror.analysis.variants`); 1 matches on the label alone.
    match_energy_bins: int = 4

    def validate(self) -> None:
        require(self.chunk_rows > 0, "analysis.chunk_rows", self.chunk_rows, "a positive integer")
        for name in ("permutations", "init_seeds"):
            require(getattr(self, name) >= 0, f"analysis.{name}", getattr(self, name), "a non-negative integer")
        ok = self.checkpoint in ("best", "last") or self.checkpoint.isdigit()
        require(ok, "analysis.checkpoint", self.checkpoint, "'best', 'last' or an epoch number")
        require(0.0 <= self.response_fraction < 1.0, "analysis.response_fraction", self.response_fraction, "a number in [0, 1)")
        require(0.0 <= self.circuit_share <= 1.0, "analysis.circuit_share", self.circuit_share, "a number in [0, 1]")
        ok = isinstance(self.match_energy_bins, int) and not isinstance(self.match_energy_bins, bool) and self.match_energy_bins >= 1
        require(ok, "analysis.match_energy_bins", self.match_energy_bins, "an integer >= 1")
        self.validate_roles()

    def validate_roles(self) -> None:
        require(self.roles in ROLE_METHODS, "analysis.roles", self.roles, f"one of {list(ROLE_METHODS)}")
        require(0.0 < self.alpha < 1.0, "analysis.alpha", self.alpha, "a number in (0, 1)")
        if self.roles == "significance" and self.permutations == 0:
            raise ConfigError(
                "analysis.roles = 'significance' needs per-neuron permutation p-values but analysis.permutations = 0: "
                "set analysis.permutations to a positive count (e.g. 200) or analysis.roles to 'paper'"
            )
        if self.roles == "significance" and self.init_seeds == 0:
            raise ConfigError(
                "analysis.roles = 'significance' calibrates mirror neurons against random-initialisation units but "
                "analysis.init_seeds = 0: set analysis.init_seeds to a positive count (e.g. 32) or analysis.roles to 'paper'"
            )
