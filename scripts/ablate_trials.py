"""H6's registered ablation on every helping trial of an RL sweep, in one process:

    mirror ablate TRIAL --units top-mns:4 --mode mean --seeds 100 --json TRIAL/ablation.json

for each trial whose result.json has the helping rate at least 0.1 (docs/theory_replication.md:
help given opportunity; the first experiment's: help_when_partner_energy0). Trials that
already have their ablation.json are skipped, so an interrupted pass resumes; one process
keeps the compiled programs between trials (the same shapes), which a shell loop of
`mirror ablate` would compile again for each.

    uv run python scripts/ablate_trials.py sweeps/sweep-rl-replication
    uv run mirror theory sweeps/sweep-rl-replication --plan replication
"""

import argparse
import json
import sys
import time
from pathlib import Path

from mirror.analysis.hypotheses import HELPING
from mirror.cli import main as mirror
from mirror.sweep.theory import ABLATION_FILE, REGISTERED_ABLATION, read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--rate", default="help_given_opportunity", choices=("help_given_opportunity", "help_when_partner_energy0"),
                        help="the helping measure that picks the trials (default help_given_opportunity, the replication's)")  # fmt: skip
    args = parser.parse_args()
    rows = read_results(args.sweep_dir)
    helping = [r for r in rows if r.get(args.rate) is not None and r[args.rate] >= HELPING]
    todo = [r for r in helping if not (args.sweep_dir / r["dir"] / ABLATION_FILE).is_file()]
    print(f"{len(rows)} trials, {len(helping)} helping ({args.rate} >= {HELPING:g}), {len(todo)} without {ABLATION_FILE}", flush=True)
    start = time.perf_counter()
    for n, row in enumerate(todo):
        trial = args.sweep_dir / row["dir"]
        command = ["ablate", str(trial), "--units", REGISTERED_ABLATION["units"], "--mode", REGISTERED_ABLATION["mode"],
                   "--seeds", str(REGISTERED_ABLATION["draws"]), "--json", str(trial / ABLATION_FILE)]  # fmt: skip
        t0 = time.perf_counter()
        if mirror(command) != 0:
            sys.exit(f"mirror {' '.join(command)} failed")
        gap = (json.loads((trial / ABLATION_FILE).read_text())["members"][0]["gap"] or {}).get(args.rate)
        print(f"[{n + 1}/{len(todo)}] {row['dir']}: gap {gap}, {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
