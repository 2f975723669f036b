"""The paper's figures as PNG files (matplotlib, Agg canvas; no pyplot state).

- `plot_training`: validation loss (red, left axis) and CMNI (green, right axis) across
  epochs, with the leaky CMNI, the random-initialisation null band and, as filled or
  hollow dots, each checkpoint's verdict against random initialisation (Figure 2);
- `plot_cmni_seeds`: Figure 2 over seeds: one panel per CMNI variant, the mean over seeds
  with a mean +/- sd band, the mean validation loss, the random-init null band and the
  peak of the mean curve;
- `plot_layer_means`: mean activation per neuron in each scenario for one layer, mirror
  candidates and differentiating neurons marked (Figures 3-4);
- `plot_circuits`: the strongest positive paths from mirror and differentiating neurons
  through second-layer hubs to actions, one colour per circuit (Figures 5-7).

Each `plot_*` writes the Figure that its `*_figure` twin builds (tests inspect those).
Legends sit outside the axes (constrained layout makes room for them), so they never
hide data; the saved PNG is exactly `figsize x DPI` pixels.
"""

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from mirror.analysis.groups import GROUP_NAMES
from mirror.agents.units import neuron_name
from mirror.analysis.neurons import DIFFERENTIATING, MIRROR
from mirror.env.constants import ACTION_NAMES

SCENARIO_COLOURS = {"none": "#9e9e9e", "frog": "#2e7d32", "toad": "#1565c0", "both": "#ef6c00"}
SCENARIO_LABELS = {"none": "distress none", "frog": "distress Frog", "toad": "distress Toad", "both": "distress both"}
ROLE_COLOURS = {MIRROR: "#d81b60", DIFFERENTIATING: "#5e35b1"}
ROLE_MARKERS = {MIRROR: "*", DIFFERENTIATING: "v"}
CIRCUIT_COLOURS = {"self-preservation": "#f57c00", "tactical help": "#1e88e5", "empathy help": "#43a047", "": "#9e9e9e"}


DPI = 130


def save_figure(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def plot_training(path, epochs, val_loss, cmni, **kwargs) -> Path:
    """Figure 2 as a PNG at `path`; arguments as `training_figure`."""
    return save_figure(training_figure(epochs, val_loss, cmni, **kwargs), path)


def training_figure(epochs, val_loss, cmni, *, cmni_leak=None, p_values=None, init_null=None, selected_epoch=None, title="") -> Figure:
    """Figure 2. epochs, val_loss, cmni (and cmni_leak, p_values): [checkpoints];
    p_values: each checkpoint's random-init p (filled dot: p <= 0.05, above the untrained
    networks); init_null: CMNI of random initialisations [seeds] (drawn as its 5-95 % band)."""
    epochs = np.asarray(epochs)
    fig = Figure(figsize=(10.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, val_loss, color="#d32f2f", lw=2, label="validation loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation loss", color="#d32f2f")
    ax.tick_params(axis="y", colors="#d32f2f")
    ax.grid(alpha=0.3)
    right = ax.twinx()
    handles = [Line2D([], [], color="#d32f2f", lw=2, label="validation loss")]
    band_clipped = focus_on_curves(right, [cmni] + ([cmni_leak] if cmni_leak is not None else []), init_null)
    if init_null is not None and len(init_null):
        lo, hi = np.percentile(init_null, [5, 95])
        right.axhspan(lo, hi, color="#bdbdbd", alpha=0.35, lw=0)
        label = f"CMNI at random init (5-95 %, {len(init_null)} seeds)"
        if band_clipped:  # said in the legend, not written over the curves
            label += f":\n{lo:.4f}-{hi:.4f}, above the axis (clipped)"
        handles.append(Patch(color="#bdbdbd", alpha=0.6, label=label))
    right.plot(epochs, cmni, color="#2e7d32", lw=2)
    handles.append(Line2D([], [], color="#2e7d32", lw=2, label="CMNI"))
    if p_values is not None and np.isfinite(p_values).any():
        significant = np.asarray(p_values) <= 0.05
        right.scatter(epochs[significant], np.asarray(cmni)[significant], s=18, color="#2e7d32", zorder=3)
        right.scatter(epochs[~significant], np.asarray(cmni)[~significant], s=18, facecolor="white", edgecolor="#2e7d32", zorder=3)
        handles.append(Line2D([], [], marker="o", ls="", color="#2e7d32", label="above random init (p <= 0.05)"))
        handles.append(Line2D([], [], marker="o", ls="", mfc="white", color="#2e7d32", label="not above random init"))
    if cmni_leak is not None:
        right.plot(epochs, cmni_leak, color="#81c784", lw=1.5, ls="--")
        handles.append(Line2D([], [], color="#81c784", lw=1.5, ls="--", label="CMNI with the published leak"))
    if selected_epoch is not None:
        ax.axvline(selected_epoch, color="black", ls=":", lw=1)
        handles.append(Line2D([], [], color="black", ls=":", lw=1, label=f"selected checkpoint (epoch {selected_epoch})"))
    ax.set_zorder(right.get_zorder() + 1)  # the loss line above the null band
    ax.patch.set_visible(False)
    right.set_ylabel("CMNI", color="#2e7d32")
    right.tick_params(axis="y", colors="#2e7d32")
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    ax.set_title(title or "Validation loss and CMNI across epochs")
    return fig


VARIANT_TITLES = {
    "cmni": "CMNI (the paper's, raw activations)",
    "cmni_scaled": "scaled CMNI (deltas / each neuron's pooled sd)",
    "cmni_matched": "matched CMNI (groups reweighted to the baseline's label x energy mix)",
}


def plot_cmni_seeds(path, epochs, variants: dict, val_loss, **kwargs) -> Path:
    """Figure 2 over seeds as a PNG at `path`; arguments as `cmni_seeds_figure`."""
    return save_figure(cmni_seeds_figure(epochs, variants, val_loss, **kwargs), path)


def cmni_seeds_figure(epochs, variants: dict, val_loss, *, init_null: dict | None = None, title="") -> Figure:
    """Figure 2 over seeds. variants: name -> values [checkpoints, seeds]; val_loss
    [checkpoints, seeds]; init_null: name -> CMNI of random initialisations (any shape,
    drawn as its 5-95 % band). One panel per variant: the mean over seeds, a band of mean
    +/- one sd (with 2 or more seeds), the mean validation loss on a twin axis and the
    epoch at which the mean curve peaks."""
    epochs = np.asarray(epochs)
    names = list(variants)
    fig = Figure(figsize=(10.5, 3.4 * len(names) + 0.6), layout="constrained")
    loss = np.nanmean(np.asarray(val_loss, float), axis=1)
    handles = {}
    for i, name in enumerate(names):
        values = np.asarray(variants[name], float)
        seeds = values.shape[1]
        mean = values.mean(axis=1)
        sd = values.std(axis=1, ddof=1) if seeds > 1 else np.zeros_like(mean)
        ax = fig.add_subplot(len(names), 1, i + 1)
        ax.plot(epochs, loss, color="#d32f2f", lw=1.5)
        handles["loss"] = Line2D([], [], color="#d32f2f", lw=1.5, label=f"validation loss (mean of {seeds} seed{'s' * (seeds > 1)})")
        ax.set_ylabel("validation loss", color="#d32f2f")
        ax.tick_params(axis="y", colors="#d32f2f")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        right = ax.twinx()
        null = None if init_null is None else np.asarray(init_null.get(name, []), float).ravel()
        null = null[np.isfinite(null)] if null is not None else None
        clipped = focus_on_curves(right, [mean - sd, mean + sd], null)
        if null is not None and len(null):
            lo, hi = np.percentile(null, [5, 95])
            right.axhspan(lo, hi, color="#bdbdbd", alpha=0.35, lw=0)
            label = f"random init (5-95 %, {len(null)} draws)" + (f":\n{lo:.4g}-{hi:.4g}, above the axis (clipped)" if clipped else "")
            handles[f"null{i}"] = Patch(color="#bdbdbd", alpha=0.6, label=f"{name}: {label}" if len(names) > 1 else label)
        if seeds > 1:
            right.fill_between(epochs, mean - sd, mean + sd, color="#2e7d32", alpha=0.2, lw=0)
            handles["band"] = Patch(color="#2e7d32", alpha=0.3, label=f"mean ± sd over {seeds} seeds")
        right.plot(epochs, mean, color="#2e7d32", lw=2)
        handles["mean"] = Line2D([], [], color="#2e7d32", lw=2, label="CMNI, mean over seeds" if seeds > 1 else "CMNI (1 seed: no band)")
        if np.isfinite(mean).any():
            peak = int(epochs[np.nanargmax(mean)])
            ax.axvline(peak, color="black", ls=":", lw=1)
            handles["peak"] = Line2D([], [], color="black", ls=":", lw=1, label="peak of the mean curve")
            right.set_title(f"{VARIANT_TITLES.get(name, name)}: peak at epoch {peak}", fontsize=10)
        else:
            right.set_title(f"{VARIANT_TITLES.get(name, name)}: not computed", fontsize=10)
        ax.set_zorder(right.get_zorder() + 1)  # the loss line above the bands
        ax.patch.set_visible(False)
        right.set_ylabel(name, color="#2e7d32")
        right.tick_params(axis="y", colors="#2e7d32")
        if i == len(names) - 1:
            ax.set_xlabel("epoch")
    fig.legend(handles=list(handles.values()), loc="outside right upper", fontsize=8)
    fig.suptitle(title or "CMNI across epochs and seeds (paper Figure 2)")
    return fig


def focus_on_curves(axis, curves, init_null) -> bool:
    """Scale the CMNI axis to the curves; a null band far above them is clipped
    (trained networks can sit far below random initialisation, which would flatten them).
    Returns whether the band was clipped."""
    values = np.concatenate([np.asarray(c, float).ravel() for c in curves])
    values = values[np.isfinite(values)]
    if not values.size:
        return False
    lo, hi = min(values.min(), 0.0), values.max()
    clipped = False
    if init_null is not None and len(init_null):
        band_lo, band_hi = np.percentile(init_null, [5, 95])
        clipped = band_hi > 2 * hi
        if not clipped:
            lo, hi = min(lo, band_lo), max(hi, band_hi)
    pad = 0.08 * (hi - lo) or 1e-3
    axis.set_ylim(lo - pad, hi + pad)
    return clipped


def plot_layer_means(path, means, roles, names, *, title="") -> Path:
    """Figures 3-4 as a PNG at `path`; arguments as `layer_means_figure`."""
    return save_figure(layer_means_figure(means, roles, names, title=title), path)


def layer_means_figure(means, roles, names, *, title="") -> Figure:
    """Figures 3-4. means[units, 4] (none, frog, toad, both); roles int[units]; names[units]."""
    means, roles = np.asarray(means), np.asarray(roles)
    units = means.shape[0]
    fig = Figure(figsize=(max(7.0, 0.55 * units + 2.5), 5.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(GROUP_NAMES)
    x = np.arange(units)
    for i, group in enumerate(GROUP_NAMES):
        ax.bar(x + (i - 1.5) * width, means[:, i], width, color=SCENARIO_COLOURS[group], label=SCENARIO_LABELS[group])
    handles, _ = ax.get_legend_handles_labels()
    for role, label in ((MIRROR, "mirror candidate"), (DIFFERENTIATING, "differentiating")):
        handles.append(Line2D([], [], marker=ROLE_MARKERS[role], ls="", color=ROLE_COLOURS[role], ms=9, label=label))
    top = np.nanmax(means) if np.isfinite(means).any() else 1.0
    for u in np.flatnonzero(roles != 0):
        colour = ROLE_COLOURS[int(roles[u])]
        ax.axvspan(u - 0.45, u + 0.45, color=colour, alpha=0.08, lw=0)
        ax.plot(u, np.nanmax(means[u]) + 0.04 * top, marker=ROLE_MARKERS[int(roles[u])], color=colour, ms=9)
    ax.set_xticks(x, names, rotation=45 if units > 8 else 0, ha="right" if units > 8 else "center")
    for tick, role in zip(ax.get_xticklabels(), roles):
        if role != 0:
            tick.set_color(ROLE_COLOURS[int(role)])
            tick.set_fontweight("bold")
    ax.set_ylabel("mean activation")
    ax.set_xlim(-0.6, units - 0.4)
    ax.grid(axis="y", alpha=0.3)
    # One row of the six entries is about 7.5 inches wide; narrower figures get two rows.
    fig.legend(handles=handles, fontsize=8, ncol=6 if fig.get_figwidth() >= 8.5 else 3, loc="outside lower center", frameon=False)
    ax.set_title(title)
    return fig


def _circuit_hubs(rows: list[dict], limit: int = 6) -> list[dict]:
    labelled = [r for r in rows if r["circuit"]]
    if not labelled:  # show the hubs with the most distress input anyway
        labelled = [r for r in rows if r["mirror_in"] + r["differentiating_in"] > 0]
    labelled.sort(key=lambda r: -(r["mirror_in"] + r["differentiating_in"]))
    return labelled[:limit]


def plot_circuits(path, rows: list[dict], *, title="") -> Path:
    """Figures 5-7 as a PNG at `path`; arguments as `circuits_figure`."""
    return save_figure(circuits_figure(rows, title=title), path)


def circuits_figure(rows: list[dict], *, title="") -> Figure:
    """Figures 5-7: rows from `circuits.circuits` (one model). Sources (first hidden layer)
    on the left, hubs in the middle, actions on the right; edge width is the weight
    relative to the largest drawn weight of the same layer pair."""
    hubs = _circuit_hubs(rows)
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    if not hubs:
        ax.text(0.5, 0.5, "no hub receives counted input from mirror or differentiating neurons", ha="center", va="center")
        ax.set_title(title)
        return fig
    sources = {}
    for r in hubs:
        for kind, role in (("mirror_sources", MIRROR), ("differentiating_sources", DIFFERENTIATING)):
            for unit, _, _ in r[kind]:
                sources.setdefault(unit, role)
    order = sorted(sources, key=lambda u: (sources[u] != MIRROR, u))
    ys = lambda n: np.linspace(0.9, 0.1, n) if n > 1 else np.array([0.5])  # noqa: E731
    source_y = dict(zip(order, ys(len(order))))
    hub_y = dict(zip([r["unit"] for r in hubs], ys(len(hubs))))
    action_y = dict(zip(ACTION_NAMES, ys(len(ACTION_NAMES))))
    max_in = max([w for r in hubs for k in ("mirror_sources", "differentiating_sources") for _, w, _ in r[k]] + [1e-12])
    max_out = max([abs(r["action_weight"]) for r in hubs] + [1e-12])
    for r in hubs:
        colour = CIRCUIT_COLOURS[r["circuit"]]
        for kind in ("mirror_sources", "differentiating_sources"):
            for unit, w, z in r[kind]:
                ax.plot([0.1, 0.5], [source_y[unit], hub_y[r["unit"]]], color=colour, lw=0.5 + 6 * w / max_in, alpha=0.75, zorder=1)
        ax.plot([0.5, 0.9], [hub_y[r["unit"]], action_y[r["action"]]], color=colour, lw=0.5 + 6 * abs(r["action_weight"]) / max_out, alpha=0.75, zorder=1)
        y = 0.8 * hub_y[r["unit"]] + 0.2 * action_y[r["action"]]  # near the hub: one label per hub
        ax.text(0.58, y, f"{r['action_weight']:.2f}", fontsize=7.5, ha="center", va="center", color=colour, bbox=dict(fc="white", ec="none", pad=0.5), zorder=3)
    for unit, y in source_y.items():
        ax.scatter(0.1, y, s=1300, color=ROLE_COLOURS[sources[unit]], zorder=2)
        ax.text(0.1, y, neuron_name(0, unit), color="white", fontsize=7.5, ha="center", va="center", fontweight="bold", zorder=3)
    for r in hubs:
        ax.scatter(0.5, hub_y[r["unit"]], s=1300, color=CIRCUIT_COLOURS[r["circuit"]], zorder=2)
        ax.text(0.5, hub_y[r["unit"]], r["hub"], color="white", fontsize=7.5, ha="center", va="center", fontweight="bold", zorder=3)
        ax.text(0.5, hub_y[r["unit"]] - 0.075, r["circuit"] or "(no circuit)", fontsize=7.5, ha="center", color=CIRCUIT_COLOURS[r["circuit"]],
                bbox=dict(fc="white", ec="none", pad=0.5), zorder=3)
    for name, y in action_y.items():
        ax.scatter(0.9, y, s=1300, color="#424242", zorder=2)
        ax.text(0.9, y, name, color="white", fontsize=8, ha="center", va="center", fontweight="bold", zorder=3)
    for x, label in ((0.1, "layer 1 sources"), (0.5, "layer 2 hubs"), (0.9, "actions")):
        ax.text(x, 1.0, label, ha="center", fontsize=10, fontweight="bold")
    handles = [Patch(color=ROLE_COLOURS[MIRROR], label="mirror candidate"), Patch(color=ROLE_COLOURS[DIFFERENTIATING], label="differentiating")]
    handles += [Line2D([], [], color=c, lw=3, label=k) for k, c in CIRCUIT_COLOURS.items() if k]
    note = "edge width: weight relative to the largest drawn weight of its layer pair; numbers: hub -> action weights"
    legend = fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=8, frameon=False, title=note, title_fontsize=7.5)
    legend.get_title().set_color("#616161")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_title(title or "Distress-activated circuits")
    return fig
