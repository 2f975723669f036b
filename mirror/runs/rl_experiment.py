"""`mirror rl`: self-play PPO with CMNI on every checkpoint, in one command.

dataset (probe set (a), built or reused from the cache) -> RL training with a checkpoint
every `rl.checkpoint_every` updates (probe set (b), evaluation, baselines; see
`mirror.runs.rl_run`) -> CMNI and the neuron analyses over every checkpoint -> summary.json
(the analysis summary plus the RL headline, `mirror.runs.rl_files.rl_summary`, and the
regime's stakes, `run_stakes`) ->
report.md. A label with a test share but no rows in probe set (a) (help at D = 0: the
env never produces it, `mirror.data.label_reach`) has its share dropped and the others
renormalised (`mirror.data.split.holdout_label_shares`), logged, and recorded in
summary.json (`probe_a_label_shares`, `probe_a_labels_dropped`) and report.md. One W&B
run follows training live (every update's values, logged as each interval ends) when
tracking is on; `wandb` is imported only then.
"""

import json
import time
from pathlib import Path

from mirror.runs.config import Config
from mirror.runs.tracking import open_tracker
from mirror.analysis.analyse import ANALYSIS_STEPS
from mirror.base.sharding import leads
from mirror.data.pipeline import build_dataset
from mirror.data.store import load_dataset
from mirror.env.constants import ACTION_NAMES
from mirror.rl.config import rl_settings
from mirror.rl.population import member_env_params, rl_members
from mirror.rl.stakes import stakes_by_dependency
from mirror.runs.analysis import analyse_run
from mirror.runs.checkpoints import write_json_atomic
from mirror.runs.progress import progress_bar, step_bar
from mirror.runs.rl_files import rl_summary
from mirror.runs.rl_report import write_rl_report
from mirror.runs.rl_run import fixed_key, rl_run


def update_scalars(line: dict) -> dict:
    """An rl_metrics.jsonl line as flat W&B scalars: "rl/<name>", lists indexed
    ("rl/return_per_player/1", or "rl/<name>/m<member>/..." for populations); nulls dropped."""
    out = {}

    def put(key, value):
        if isinstance(value, list):
            for i, v in enumerate(value):
                put(f"{key}/{i}", v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value

    for key, value in line.items():
        if key != "update":
            put(f"rl/{key}", value)
    return out


def run_rl_experiment(config: Config, run_dir, *, resume: bool = False, log=print, mesh=None) -> dict | None:
    """Run (or resume) every stage in `run_dir`; returns summary.json's values (plus
    run_dir, report, run_timings_s: dataset, training, compile and cmni seconds).
    `mesh`: the members' `pop` mesh (`mirror.runs.rl_run.rl_run`); on one over several
    processes, process 0 does all of this and the others only train (and return None)."""
    run_dir = Path(run_dir).absolute()
    if not leads(mesh):
        return _train_share(config, run_dir, resume, log, mesh)
    tracker = open_tracker(config.tracking, run_dir, run_dir.name, config.to_dict(), group=config.tracking.group, job_type="rl")
    try:
        headline = _run_stages(config, run_dir, resume, log, tracker, mesh)
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    tracker.finish()
    return headline


def _dataset(config: Config, run_dir: Path, resume: bool, log):
    recorded = run_dir / "dataset.json"
    if resume and recorded.is_file():
        return load_dataset(json.loads(recorded.read_text())["path"]), True
    with progress_bar("dataset: unique rows", total=config.data.rows) as advance:
        return build_dataset(config, progress=lambda done, total: advance(done), drop_absent_labels=True)


def probe_a_shares(manifest: dict) -> dict:
    """summary.json's record of probe set (a)'s test-split label shares: the shares used
    (the config's, unless a label had no rows) and the labels dropped, with why."""
    shares = manifest.get("test_label_shares", manifest.get("config", {}).get("data", {}).get("test_label_shares"))
    return {
        "probe_a_label_shares": None if shares is None else dict(zip(ACTION_NAMES, (round(float(x), 6) for x in shares))),
        "probe_a_labels_dropped": manifest.get("test_labels_dropped") or {},
    }


def _train_share(config: Config, run_dir: Path, resume: bool, log, mesh) -> None:
    """Another process's part of a run split over several: its members' training. It
    builds (or loads) the dataset too, as process 0 does meanwhile, so that both reach the
    run's first collective step together."""
    dataset, _ = _dataset(config, run_dir, resume, log)
    rl_run(config, run_dir, resume=resume, dataset=dataset, log=log, mesh=mesh)


def _run_stages(config: Config, run_dir: Path, resume: bool, log, tracker, mesh=None) -> dict:
    updates = rl_settings(config).ppo.updates
    timings = {}
    start = time.perf_counter()
    dataset, reused = _dataset(config, run_dir, resume, log)
    timings["dataset"] = time.perf_counter() - start
    log(f"dataset (probe set a): {dataset.path} ({'cached' if reused else 'generated'}, {len(dataset.labels):,} rows, {timings['dataset']:.1f} s)")
    probe_a = probe_a_shares(dataset.manifest)
    for name, why in probe_a["probe_a_labels_dropped"].items():
        shares = ", ".join(f"{k} {v:.3f}" for k, v in probe_a["probe_a_label_shares"].items())
        log(f"probe set (a) has no {name} rows ({why}); its test split drops {name}'s share and renormalises the others: {shares}")

    start = time.perf_counter()
    with progress_bar("rl: updates", total=updates, unit=" updates") as advance:

        def on_update(report) -> None:
            tracker.log_metrics(update_scalars(report.line), step=report.update)
            advance(report.update)

        result = rl_run(config, run_dir, resume=resume, dataset=dataset, on_update=on_update, log=log, mesh=mesh)
    timings["training"] = time.perf_counter() - start
    timings["compile"] = result.compile_s

    start = time.perf_counter()
    with step_bar("cmni", total=ANALYSIS_STEPS) as step:
        analysis = analyse_run(run_dir, run_dir, progress=step, log=log)
    timings["cmni"] = time.perf_counter() - start

    start = time.perf_counter()
    stakes = run_stakes(config)
    timings["stakes"] = time.perf_counter() - start
    summary = {
        **json.loads((run_dir / "summary.json").read_text()), **rl_summary(run_dir), **probe_a, "stakes": stakes,
        "run_timings_s": timings,
    }  # fmt: skip
    write_json_atomic(run_dir / "summary.json", summary)
    report = write_rl_report(run_dir)
    tracker.summary({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    log(f"analysed {len(analysis.run.epochs)} checkpoint(s) x {len(analysis.run.members)} network(s) in {timings['cmni']:.1f} s")
    return {**summary, "run_dir": str(run_dir), "report": str(report)}


STAKES_STREAM = 4  # the stakes' games: fold_in(key(seed), 4), apart from the run's other fixed keys


def run_stakes(config: Config) -> dict:
    """summary.json's `stakes`: the regime diagnostics of spec §10 (`mirror stakes`) for the
    run's env at each D of its members, over `rl.eval_games` whole episodes per pairing."""
    settings = rl_settings(config)
    dependencies = sorted({float(member_env_params(config, m).dependency) for m in rl_members(config)})
    return stakes_by_dependency(
        config.env, dependencies, fixed_key(config.seed, STAKES_STREAM), settings.eval_games,
        settings.helper_max_partner_energy, settings.helper_min_own_energy,
    )  # fmt: skip


def format_rl_headline(h: dict) -> str:
    def f(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    t = h["run_timings_s"]
    return "\n".join(
        [
            f"return per player per episode: agent {f(h['return_agent'])}, behaviour {f(h['return_behaviour'])}, oracle {f(h['return_oracle'])}, "
            f"hop_jump {f(h.get('return_hop_jump'))}",
            f"help rate {f(h['help_rate'], '.3f')}, when the partner is distressed {f(h['help_when_partner_distressed'], '.3f')}",
            f"{h['env_turns']:,} trained turns at {f(h['turns_per_s'], ',.0f')} turns/s; time: dataset {t['dataset']:.1f} s, "
            f"RL {t['training']:.1f} s (compile {t['compile']:.1f} s), CMNI {t['cmni']:.1f} s",
            f"report: {h['report']}",
        ]
    )
