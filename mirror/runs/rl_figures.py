"""The figures of RL runs as PNG files (matplotlib, Agg canvas; no pyplot state).

- `plot_learning_curve`: mean return per player per episode against env turns (one line
  per population member, their mean bold), with the behaviour, label-oracle and scripted
  baselines' returns (hop_jump, helper and lone helper on both bases) as horizontal lines;
- `plot_checkpoint_cmni`: the CMNI of one network across checkpoints on both probe sets,
  (a) the supervised test split and (b) the agents' own on-policy states, with the
  random-initialisation null band and, as filled or hollow dots, each checkpoint's
  verdict against random initialisation on that probe set;
- `plot_help_by_dependency`: for RL sweeps, the help rate (and any other result column)
  against the dependency D, one line per partner-reward weight w, one panel per veil I,
  mean and standard deviation over seeds.

Each `plot_*` writes the Figure that its `*_figure` twin builds (tests inspect those).
As in `mirror.runs.figures`, legends sit outside the axes, so they never hide data.
"""

from collections import defaultdict

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mirror.runs.figures import focus_on_curves, save_figure

MEMBER_COLOURS = ("#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#c62828", "#00838f", "#827717", "#4e342e")
BEHAVIOUR_COLOUR, ORACLE_COLOUR = "#757575", "#d81b60"
# The scripted baselines' lines: (colour, dash style) in the order they are given.
SCRIPTED_STYLES = (("#6d4c41", "-."), ("#00897b", (0, (5, 2))), ("#00897b", (0, (1, 2))), ("#8e24aa", (0, (5, 2))), ("#8e24aa", (0, (1, 2))))
TEST_COLOUR, ONPOLICY_COLOUR = "#2e7d32", "#1565c0"  # probe set (a) the test split, (b) on-policy states
SWEEP_METRIC_LABELS = {
    "help_rate": "help rate",
    "help_when_partner_distressed": "help rate, partner in distress",
    "cmni": "CMNI (probe set a)",
    "cmni_onpolicy": "CMNI on-policy (probe set b)",
    "return_agent": "mean return per player per episode",
}


def _per_member_baseline(value, members: int) -> np.ndarray:
    """A baseline return as float[members] (a scalar applies to every member)."""
    values = np.asarray(value, float).reshape(-1)
    return np.broadcast_to(values, (members,)) if values.size == 1 else values


def plot_learning_curve(path, env_turns, returns, **kwargs):
    """The learning curve as a PNG at `path`; arguments as `learning_curve_figure`."""
    return save_figure(learning_curve_figure(env_turns, returns, **kwargs), path)


def learning_curve_figure(env_turns, returns, *, behaviour=None, oracle=None, scripted=None, member_labels=None, title="") -> Figure:
    """env_turns[updates]; returns[updates] or [updates, members]: the mean return per player
    per episode; behaviour / oracle: the baselines' return, a scalar or float[members]
    (members of different env params have their own baselines, drawn in their colour);
    scripted: {label: return} of more baselines (e.g. "hop_jump", "helper (oracle)"),
    drawn the same way (None values are skipped)."""
    x = np.asarray(env_turns, float)
    y = np.asarray(returns, float).reshape(len(x), -1)
    members = y.shape[1]
    fig = Figure(figsize=(10.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    handles = []
    colour = lambda m: MEMBER_COLOURS[m % len(MEMBER_COLOURS)] if members > 1 else "#1565c0"  # noqa: E731
    for m in range(members):
        label = (member_labels[m] if member_labels else f"member {m}") if members > 1 else "agents (PPO self-play)"
        ax.plot(x, y[:, m], color=colour(m), lw=1.2 if members > 1 else 2, alpha=0.8)
        handles.append(Line2D([], [], color=colour(m), lw=1.2 if members > 1 else 2, label=label))
    if members > 1:
        ax.plot(x, np.nanmean(y, axis=1), color="black", lw=2.2)
        handles.append(Line2D([], [], color="black", lw=2.2, label=f"mean of {members} members"))
    lines = [(behaviour, "behaviour policy", "--", BEHAVIOUR_COLOUR), (oracle, "label oracle", ":", ORACLE_COLOUR)]
    for i, (name, value) in enumerate((scripted or {}).items()):
        line_colour, style = SCRIPTED_STYLES[i % len(SCRIPTED_STYLES)]
        lines.append((value, name, style, line_colour))
    for value, name, style, line_colour in lines:
        if value is None:
            continue
        levels = _per_member_baseline(value, members)
        if np.allclose(levels, levels[0], equal_nan=True):
            ax.axhline(levels[0], color=line_colour, ls=style, lw=1.8)
            handles.append(Line2D([], [], color=line_colour, ls=style, lw=1.8, label=f"{name} ({levels[0]:.2f})"))
        else:  # one level per member, in the member's colour
            for m, level in enumerate(levels):
                ax.axhline(level, color=colour(m), ls=style, lw=1.2, alpha=0.8)
            handles.append(Line2D([], [], color=line_colour, ls=style, lw=1.2, label=f"{name} (per member, its colour)"))
    ax.set_xlabel("env turns")
    ax.set_ylabel("mean return per player per episode")
    ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    ax.set_title(title or "Return against env turns")
    return fig


def plot_checkpoint_cmni(path, x, cmni_test, cmni_onpolicy, **kwargs):
    """CMNI across checkpoints as a PNG at `path`; arguments as `checkpoint_cmni_figure`."""
    return save_figure(checkpoint_cmni_figure(x, cmni_test, cmni_onpolicy, **kwargs), path)


def _p_markers(ax, x, y, p, colour, handles, name):
    if p is None or not np.isfinite(p).any():
        return
    significant = np.asarray(p) <= 0.05
    ax.scatter(x[significant], y[significant], s=22, color=colour, zorder=3)
    ax.scatter(x[~significant], y[~significant], s=22, facecolor="white", edgecolor=colour, zorder=3)
    handles.append(Line2D([], [], marker="o", ls="", color=colour, label=f"{name}: above random init (p <= 0.05)"))
    handles.append(Line2D([], [], marker="o", ls="", mfc="white", color=colour, label=f"{name}: not above random init"))


def checkpoint_cmni_figure(x, cmni_test, cmni_onpolicy, *, p_test=None, p_onpolicy=None, init_null=None, selected=None, xlabel="env turns", title="") -> Figure:
    """x[checkpoints] (env turns or updates); cmni_test, cmni_onpolicy (and their random-init p-values):
    [checkpoints] of one network; init_null: CMNI of random initialisations [seeds] on the
    test split (drawn as its 5-95 % band); selected: x of the analysed checkpoint."""
    x = np.asarray(x, float)
    test, onpolicy = np.asarray(cmni_test, float), np.asarray(cmni_onpolicy, float)
    fig = Figure(figsize=(10.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    handles = []
    band_clipped = focus_on_curves(ax, [test, onpolicy], init_null)
    if init_null is not None and len(init_null):
        lo, hi = np.percentile(init_null, [5, 95])
        ax.axhspan(lo, hi, color="#bdbdbd", alpha=0.35, lw=0)
        label = f"CMNI at random init, test split (5-95 %, {len(init_null)} seeds)"
        if band_clipped:
            label += f":\n{lo:.4f}-{hi:.4f}, above the axis (clipped)"
        handles.append(Patch(color="#bdbdbd", alpha=0.6, label=label))
    ax.plot(x, test, color=TEST_COLOUR, lw=2)
    handles.append(Line2D([], [], color=TEST_COLOUR, lw=2, label="CMNI (a): test split"))
    _p_markers(ax, x, test, p_test, TEST_COLOUR, handles, "(a)")
    ax.plot(x, onpolicy, color=ONPOLICY_COLOUR, lw=2, ls="--")
    handles.append(Line2D([], [], color=ONPOLICY_COLOUR, lw=2, ls="--", label="CMNI (b): on-policy states"))
    _p_markers(ax, x, onpolicy, p_onpolicy, ONPOLICY_COLOUR, handles, "(b)")
    if selected is not None:
        ax.axvline(selected, color="black", ls=":", lw=1)
        handles.append(Line2D([], [], color="black", ls=":", lw=1, label=f"selected checkpoint ({xlabel} {selected:,.0f})"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("CMNI")
    ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    ax.set_title(title or "CMNI across checkpoints on both probe sets")
    return fig


def sweep_cells(rows: list[dict], metric: str) -> dict:
    """{(veil, w): (dependencies, mean, std, seeds)} of `metric` over the seeds of each
    (D, I, w) cell; rows with a missing or NaN value are left out."""
    values = defaultdict(list)
    for row in rows:
        value = row.get(metric)
        if value is None or not np.isfinite(float(value)):
            continue
        values[(float(row["veil"]), float(row["partner_reward_weight"]), float(row["dependency"]))].append(float(value))
    out = {}
    for veil, w in sorted({(v, w) for v, w, _ in values}):
        ds = sorted(d for v, ww, d in values if (v, ww) == (veil, w))
        cells = [np.asarray(values[(veil, w, d)]) for d in ds]
        out[(veil, w)] = (np.asarray(ds), np.asarray([c.mean() for c in cells]), np.asarray([c.std() for c in cells]), np.asarray([len(c) for c in cells]))
    return out


def plot_help_by_dependency(path, rows, **kwargs):
    """The sweep figure as a PNG at `path`; arguments as `help_by_dependency_figure`."""
    return save_figure(help_by_dependency_figure(rows, **kwargs), path)


def help_by_dependency_figure(rows: list[dict], *, metrics=("help_rate", "help_when_partner_distressed"), title="") -> Figure:
    """rows: one dict per trial with dependency, veil, partner_reward_weight, seed and the
    `metrics` columns. One panel per (metric, veil I): the metric against D, one line per
    w, points at the seeds' mean with error bars of their standard deviation."""
    veils = sorted({float(r["veil"]) for r in rows})
    weights = sorted({float(r["partner_reward_weight"]) for r in rows})
    colour = {w: MEMBER_COLOURS[i % len(MEMBER_COLOURS)] for i, w in enumerate(weights)}
    fig = Figure(figsize=(4.2 * len(veils) + 2.8, 3.4 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), len(veils), squeeze=False, sharex=True)
    for i, metric in enumerate(metrics):
        cells = sweep_cells(rows, metric)
        for j, veil in enumerate(veils):
            ax = axes[i, j]
            for w in weights:
                if (veil, w) in cells:
                    d, mean, std, _ = cells[(veil, w)]
                    ax.errorbar(d, mean, yerr=std, color=colour[w], marker="o", ms=5, lw=1.8, capsize=3)
            ax.set_title(f"veil I = {veil:g}", fontsize=10)
            ax.set_ylabel(SWEEP_METRIC_LABELS.get(metric, metric))
            ax.set_xlabel("dependency D")
            ax.grid(alpha=0.3)
    seeds = sorted({r.get("seed") for r in rows})
    handles = [Line2D([], [], color=colour[w], marker="o", lw=1.8, label=f"w = {w:g}") for w in weights]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title=f"partner reward\nweight ({len(seeds)} seeds;\nbars: std)", title_fontsize=8)
    fig.suptitle(title or f"{', '.join(SWEEP_METRIC_LABELS.get(m, m) for m in metrics)} against the dependency D")
    return fig
