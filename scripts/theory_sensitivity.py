"""The corrections' analyses of the first theory experiment from its committed numbers.

    uv run python scripts/theory_sensitivity.py

`mirror theory SWEEP_DIR` runs them on a sweep directory (hypotheses.json's "sensitivity",
hypotheses.md's last section). The first experiment's sweep directory is not in the
repository; its per-trial measures are (docs/results/sweep_rl_stakes_hypotheses.json,
"trial_values", as `mirror theory` wrote them). This script runs the same analyses
(`mirror.analysis.sensitivity`, the registered permutations, seed and power designs) on
them, writes docs/results/sweep_rl_stakes_sensitivity.json and prints the markdown, and
fills the summary's empty `ablation_gap` column from the same per-trial gaps.
"""

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mirror.analysis import hypotheses  # noqa: E402
from mirror.analysis.sensitivity import sensitivity_tests  # noqa: E402
from mirror.sweep.theory import MEASURE_COLUMNS, fill_ablation_gaps, sensitivity_lines  # noqa: E402

RESULTS = ROOT / "docs" / "results"


def main() -> None:
    report = json.loads((RESULTS / "sweep_rl_stakes_hypotheses.json").read_text())
    values = report["trial_values"]
    measures = {m: np.asarray([np.nan if v[m] is None else v[m] for v in values], np.float64) for m in [*MEASURE_COLUMNS, "ablation_gap"]}
    levels = {e["hypothesis"]: e["holm_level"] for e in report["primary"]}
    sens = sensitivity_tests(measures, levels, permutations=hypotheses.PERMUTATIONS, seed=hypotheses.SEED, power_draws=hypotheses.POWER_DESIGNS)
    out = RESULTS / "sweep_rl_stakes_sensitivity.json"
    out.write_text(json.dumps(sens, indent=1) + "\n")
    print("\n".join(sensitivity_lines(sens)))
    print(f"wrote {out.relative_to(ROOT)}")
    fill_ablation_gaps(RESULTS / "sweep_rl_stakes_summary.csv", {v["trial"]: v["ablation_gap"] for v in values})
    print("filled the ablation_gap column of docs/results/sweep_rl_stakes_summary.csv")


if __name__ == "__main__":
    main()
