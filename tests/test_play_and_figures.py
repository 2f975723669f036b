"""`mirror play` reports every episode's scores; figures keep their legends off the data;
the worked examples of docs/game.md are what the env does."""

import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox
from test_analysis import TABLE_4, circuit_model, table_4_differences

from mirror.analysis.circuits import circuits
from mirror.analysis.neurons import neuron_roles
from mirror.cli import main
from mirror.env import EnvParams, observe_given_veil, render, state_from_values, transition
from mirror.env.constants import HELP, HELPING, HOP, JUMP, JUMPING, LEAP
from mirror.env.noise import Noise
from mirror.runs import figures
from mirror.sweep import summary

FRAME_STATS = re.compile(r"^turn\s+(\d+)\s+Frog e=\s*\d+ s=\s*(\d+) .*Toad e=\s*\d+ s=\s*(\d+)")
EPISODE_LINE = re.compile(r"^episode (\d+) finished after (\d+) turns: Frog (\d+), Toad (\d+); new game$")
RUNNING_LINE = re.compile(r"^running game \(episode (\d+)\) after (\d+) turns: Frog (\d+), Toad (\d+)$")


def _play(capsys, *argv) -> list[str]:
    assert main(["play", "--fps", "0", *argv]) == 0
    return capsys.readouterr().out.splitlines()


def _frames(lines: list[str]) -> list[tuple[int, int, int]]:
    """(turn, Frog score, Toad score) of every rendered frame, in order."""
    return [tuple(int(g) for g in m.groups()) for m in map(FRAME_STATS.match, lines) if m]


# ----------------------------------------------------------------------------- mirror play


@pytest.mark.slow
def test_play_reports_the_finished_episode_not_the_fresh_game(capsys):
    lines = _play(capsys, "--turns", "200", "--seed", "0")
    episodes = [m for m in map(EPISODE_LINE.match, lines) if m]
    assert len(episodes) == 1
    number, turns, frog, toad = (int(g) for g in episodes[0].groups())
    assert (number, turns) == (1, 200)
    # The frame before the last action shows turn 199; Toad makes that last move (odd
    # turn), so Frog's score is final there and Toad's can still grow by one hop.
    before = [f for f in _frames(lines) if f[0] == 199]
    assert len(before) == 1
    _, frog_199, toad_199 = before[0]
    assert frog == frog_199 > 0
    assert toad - toad_199 in (0, 1) and toad > 0
    # The game reset itself: the last line is the fresh game, labelled as such.
    assert RUNNING_LINE.match(lines[-1]).groups() == ("2", "0", "0", "0")


def test_play_reports_each_episode_and_the_running_game(capsys):
    lines = _play(capsys, "--turns", "230", "--seed", "2", "--policy", "oracle")
    episodes = [tuple(int(g) for g in m.groups()) for m in map(EPISODE_LINE.match, lines) if m]
    assert [e[:2] for e in episodes] == [(1, 200)]
    running = tuple(int(g) for g in RUNNING_LINE.match(lines[-1]).groups())
    frames = _frames(lines)
    # The last frame is the running game after 30 turns; its scores are the reported ones.
    assert running[:2] == (2, 30) and frames[-1] == (30, running[2], running[3])
    # Scores never decrease within an episode and restart from 0 after the reset.
    assert len(frames) == 231 and [f[0] for f in frames] == list(range(200)) + list(range(31))
    first = frames[:200]
    assert all(b[1] >= a[1] and b[2] >= a[2] for a, b in zip(first, first[1:]))
    assert frames[200] == (0, 0, 0)
    # The oracle hops on solid ground: both players score in both games.
    assert min(episodes[0][2:]) > 50 and min(running[2:]) > 5


def test_play_shorter_than_an_episode_reports_only_the_running_game(capsys):
    lines = _play(capsys, "--turns", "7", "--seed", "1")
    assert not any(map(EPISODE_LINE.match, lines))
    running = RUNNING_LINE.match(lines[-1]).groups()
    assert running[:2] == ("1", "7")
    assert _frames(lines)[-1] == (7, int(running[2]), int(running[3]))


# ----------------------------------------------------------------------------- figures

EPOCHS = np.arange(1, 31)
# The quickstart's shape: the loss falls, the CMNI rises and stays near its peak, so the
# curves fill the upper right corner where the Figure 2 legend used to sit.
VAL_LOSS = 0.03 + 0.07 * np.exp(-EPOCHS / 6)
CMNI = 0.001 + 0.007 * (1 - np.exp(-EPOCHS / 4))
CMNI_LEAK = CMNI + 0.0005
P_VALUES = np.where(EPOCHS < 4, 0.3, 0.004)
INIT_NULL = np.random.default_rng(0).normal(0.004, 0.001, 32)


def _draw(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _legends(fig) -> list:
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def _segment_points(xy: np.ndarray, per_segment: int = 40) -> np.ndarray:
    """The vertices of a polyline and points along each of its segments."""
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 2:
        return xy
    t = np.linspace(0, 1, per_segment)[None, :, None]
    return (xy[:-1, None] * (1 - t) + xy[1:, None] * t).reshape(-1, 2)


def _shown_data(ax, renderer) -> tuple[np.ndarray, list[Bbox]]:
    """What the axes shows, in display pixels: points along every line, scatter points
    grown by their marker radius (as boxes), bars, spans and texts (as boxes), all clipped
    to the axes (what lies outside them is not drawn)."""
    points, boxes = [], []
    for line in ax.lines:
        pts = _segment_points(line.get_transform().transform(np.asarray(line.get_xydata(), float)))
        if line.get_marker() not in ("None", None, "", " "):
            r = line.get_markersize() / 2 * renderer.points_to_pixels(1.0)
            boxes += [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in pts]
        points.append(pts)
    for coll in ax.collections:
        offsets = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float))
        sizes = np.broadcast_to(np.asarray(coll.get_sizes(), float), (len(offsets),))
        for (x, y), s in zip(offsets, sizes):
            r = np.sqrt(s) / 2 * renderer.points_to_pixels(1.0)
            boxes.append(Bbox.from_extents(x - r, y - r, x + r, y + r))
    boxes += [p.get_window_extent(renderer) for p in ax.patches]
    boxes += [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
    clipped = [Bbox.intersection(b, ax.bbox) for b in boxes]
    pts = np.concatenate(points) if points else np.zeros((0, 2))
    inside = (pts[:, 0] >= ax.bbox.x0) & (pts[:, 0] <= ax.bbox.x1) & (pts[:, 1] >= ax.bbox.y0) & (pts[:, 1] <= ax.bbox.y1)
    return pts[inside], [b for b in clipped if b is not None and b.width > 0 and b.height > 0]


def _decorations(fig, renderer) -> list[Bbox]:
    """Titles, axis labels and tick labels: the legend must not cover them either."""
    texts = list(fig.texts)  # the suptitle, if any
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        if ax.axison:
            texts += ax.get_xticklabels() + ax.get_yticklabels()
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]


def assert_legends_hide_nothing(fig) -> None:
    renderer = _draw(fig)
    legends = _legends(fig)
    assert legends, "no legend"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        # Nothing of the legend is cut off at the figure's edge.
        inside = fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
        assert inside, "legend extends past the figure's edge"
        for ax in fig.axes:
            pts, boxes = _shown_data(ax, renderer)
            covered = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
            assert not covered.any(), f"legend covers {covered.sum()} line points of {ax.get_title()!r}"
            assert not any(box.overlaps(b) for b in boxes), f"legend covers a marker, bar or text of {ax.get_title()!r}"
        assert not any(box.overlaps(b) for b in _decorations(fig, renderer)), "legend covers a label"


def _legend_labels(fig) -> list[str]:
    return [t.get_text() for legend in _legends(fig) for t in legend.get_texts()]


def assert_png_matches(path, fig) -> np.ndarray:
    """The PNG decodes to exactly the figure's size at the save DPI; returns its pixels."""
    image = matplotlib.image.imread(path)
    width, height = fig.get_size_inches() * figures.DPI
    assert image.shape[:2] == (int(height), int(width)) and image.shape[2] in (3, 4)  # Agg truncates
    return image[..., :3]


def _share_of_colour(image: np.ndarray, hex_colour: str) -> float:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return float(np.mean(np.abs(image - rgb).max(axis=-1) < 0.02))


def test_training_figure_content_and_legend(tmp_path):
    kwargs = dict(cmni_leak=CMNI_LEAK, p_values=P_VALUES, init_null=INIT_NULL, selected_epoch=13)
    fig = figures.training_figure(EPOCHS, VAL_LOSS, CMNI, **kwargs)
    assert_legends_hide_nothing(fig)
    loss_ax, cmni_ax = fig.axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel(), cmni_ax.get_ylabel()) == ("epoch", "validation loss", "CMNI")
    assert loss_ax.get_title() == "Validation loss and CMNI across epochs"
    assert len(loss_ax.lines) == 2 and len(cmni_ax.lines) == 2  # loss + selected epoch; CMNI + leak
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), VAL_LOSS)
    np.testing.assert_allclose(cmni_ax.lines[0].get_ydata(), CMNI)
    assert loss_ax.lines[1].get_xdata()[0] == 13
    assert len(cmni_ax.collections) == 2  # significant and not-significant dots
    assert [len(c.get_offsets()) for c in cmni_ax.collections] == [27, 3]
    assert _legend_labels(fig) == [
        "validation loss", "CMNI at random init (5-95 %, 32 seeds)", "CMNI", "above random init (p <= 0.05)",
        "not above random init", "CMNI with the published leak", "selected checkpoint (epoch 13)",
    ]  # fmt: skip
    # The band fits under 2x the curves' maximum here, so the axis shows all of it.
    lo, hi = np.percentile(INIT_NULL, [5, 95])
    assert cmni_ax.get_ylim()[0] < lo and hi < cmni_ax.get_ylim()[1]
    path = figures.plot_training(tmp_path / "training.png", EPOCHS, VAL_LOSS, CMNI, **kwargs)
    image = assert_png_matches(path, fig)
    assert _share_of_colour(image, "#d32f2f") > 0.002 and _share_of_colour(image, "#2e7d32") > 0.002


def test_training_figure_notes_a_clipped_null_band_in_the_legend():
    far_null = np.full(32, 0.05) + np.linspace(0, 0.01, 32)
    fig = figures.training_figure(EPOCHS, VAL_LOSS, CMNI, init_null=far_null)
    assert_legends_hide_nothing(fig)
    assert not fig.axes[1].texts  # nothing written over the curves
    band = [label for label in _legend_labels(fig) if label.startswith("CMNI at random init")]
    assert len(band) == 1 and band[0].endswith("above the axis (clipped)")
    assert fig.axes[1].get_ylim()[1] < 0.01


def test_layer_means_figure_content_and_legend(tmp_path):
    roles = neuron_roles(*table_4_differences())
    names = [f"L1N{i}" for i in range(17)]
    fig = figures.layer_means_figure(TABLE_4, roles, names, title="layer 1")
    assert_legends_hide_nothing(fig)
    (ax,) = fig.axes
    marked = int(np.sum(roles != 0))
    assert marked == 6
    assert len(ax.patches) == 17 * 4 + marked  # four bars per neuron, a span per marked neuron
    assert len(ax.lines) == marked
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert (ax.get_ylabel(), ax.get_title()) == ("mean activation", "layer 1")
    assert _legend_labels(fig) == ["distress none", "distress Frog", "distress Toad", "distress both", "mirror candidate", "differentiating"]
    image = assert_png_matches(figures.plot_layer_means(tmp_path / "layer1.png", TABLE_4, roles, names), fig)
    assert _share_of_colour(image, figures.SCENARIO_COLOURS["toad"]) > 0.002


@pytest.mark.parametrize("units", [1, 4, 9, 11, 12, 17])
def test_layer_figures_of_any_width_keep_their_legend_inside(units, tmp_path):
    """The outputs layer (4 neurons, names on two lines) and the population widths draw
    narrower figures than Table 4's 17 neurons; the legend must still fit."""
    names = [f"L3N{i}\nhelp" for i in range(units)]
    roles = np.resize([1, 0, 0, 2], units)
    fig = figures.layer_means_figure(TABLE_4[:units], roles, names, title=f"{units} units")
    assert_legends_hide_nothing(fig)
    assert len(fig.axes[0].patches) == units * 4 + int(np.sum(roles != 0)) and len(_legend_labels(fig)) == 6
    assert_png_matches(figures.plot_layer_means(tmp_path / "layer.png", TABLE_4[:units], roles, names), fig)


def test_circuits_figure_content_and_legend(tmp_path):
    params, roles = circuit_model()
    rows = circuits(params, roles)
    fig = figures.circuits_figure(rows)
    assert_legends_hide_nothing(fig)
    (ax,) = fig.axes
    assert ax.get_title() == "Distress-activated circuits"
    hubs = [r for r in rows if r["circuit"]]
    edges = sum(len(r["mirror_sources"]) + len(r["differentiating_sources"]) + 1 for r in hubs)
    assert len(hubs) == 3 and len(ax.lines) == edges
    assert _legend_labels(fig) == ["mirror candidate", "differentiating", "self-preservation", "tactical help", "empathy help"]
    assert_png_matches(figures.plot_circuits(tmp_path / "c.png", rows), fig)
    empty = figures.circuits_figure([])
    assert not _legends(empty) and empty.axes[0].texts[0].get_text().startswith("no hub")
    assert_png_matches(figures.plot_circuits(tmp_path / "empty.png", []), empty)


def _sweep_results() -> list[dict]:
    """Trials spread over the whole plane, so a legend anywhere inside would cover one."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(48):
        layers, width = 1 + i % 2, (4, 8, 16, 32)[i // 2 % 4]
        rows.append({
            "hidden_layers": layers, "capacity": layers * width, "dependency": (0.0, 0.5, 1.0)[i % 3],
            "veil": (0.0, 1.0)[i // 3 % 2], "peak_cmni": float(rng.uniform(0, 0.01)), "cmni_at_best": float(rng.uniform(0, 0.01)),
        })  # fmt: skip
    return rows


def test_sweep_figures_content_and_legends(tmp_path):
    results = _sweep_results()
    capacity = summary.capacity_figure(results)
    assert_legends_hide_nothing(capacity)
    assert len(capacity.legends) == 1 and all(ax.get_legend() is None for ax in capacity.axes)
    assert _legend_labels(capacity) == ["1 hidden layer", "2 hidden layers"]
    for ax, title in zip(capacity.axes, ("peak CMNI over epochs", "CMNI at the best-validation checkpoint")):
        assert (ax.get_title(), ax.get_ylabel()) == (title, "CMNI")
        assert [len(c.get_offsets()) for c in ax.collections] == [24, 24]
    theory = summary.theory_figure(results)
    assert_legends_hide_nothing(theory)
    assert _legend_labels(theory) == ["one trial", "mean over trials"]
    for ax, label, settings in zip(theory.axes, ("dependency D", "veil of ignorance I"), ([0.0, 0.5, 1.0], [0.0, 1.0])):
        assert ax.get_xlabel() == label and len(ax.lines) == 1
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), settings)
    assert summary.DPI == figures.DPI
    assert_png_matches(summary.plot_capacity(tmp_path / "capacity.png", results), capacity)
    assert_png_matches(summary.plot_theory(tmp_path / "theory.png", results), theory)


def test_sweep_figures_with_a_diverged_trial_and_a_single_setting(tmp_path):
    """A diverged trial has no CMNI (None); a sweep may fix D and I. Both still plot."""
    results = [dict(r, dependency=1.0, veil=0.0) for r in _sweep_results()[:6]]
    results.append(dict(results[0], peak_cmni=None, cmni_at_best=None))
    for make, plot in ((summary.capacity_figure, summary.plot_capacity), (summary.theory_figure, summary.plot_theory)):
        fig = make(results)
        assert_legends_hide_nothing(fig)
        assert_png_matches(plot(tmp_path / f"{make.__name__}.png", results), fig)
    theory = summary.theory_figure(results)
    assert [ax.get_title() for ax in theory.axes] == ["dependency D fixed at 1 in this sweep", "veil of ignorance I fixed at 0 in this sweep"]



def test_play_on_a_terminal_keeps_finished_episodes_on_screen(capsys, monkeypatch):
    """A live screen is cleared before every frame, so a finished episode's line is
    redrawn under each later frame (here 3) and once more before the last line."""
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    lines = _play(capsys, "--turns", "203", "--seed", "0")
    assert sum(line.count("\033[H\033[2J") for line in lines) == 203
    episode = [line for line in lines if EPISODE_LINE.match(line)]
    assert len(episode) == 4 and len(set(episode)) == 1
    assert EPISODE_LINE.match(episode[0]).groups()[:2] == ("1", "200")
    assert lines[-2] == episode[0]
    assert RUNNING_LINE.match(lines[-1]).groups()[:2] == ("2", "3")


# ----------------------------------------------------------------------------- docs/game.md

GAME_MD = Path(__file__).resolve().parents[1] / "docs" / "game.md"


def _quiet_noise(params, push: bool):
    """A turn with no fly spawned or moved, no obstacle started, and the push as given."""
    w, k = params.world_width, params.new_cells_max
    return Noise(
        fly_spawn=jnp.full(w, 0.99, jnp.float32), fly_move=jnp.full(w, 0.5, jnp.float32),
        cell_start=jnp.full(k, 0.99, jnp.float32), cell_width=jnp.zeros(k, jnp.float32),
        help_leap=jnp.float32(0.0 if push else 0.99),
    )  # fmt: skip


def _pairs(cell: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", cell)]


def test_the_worked_turns_in_game_md_are_what_the_env_does():
    text = GAME_MD.read_text()
    table = text[text.index("| turn | who | action |") :].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 6
    actions = {"hop": HOP, "jump": JUMP, "leap": LEAP, "help": HELP}
    play = jax.jit(transition)
    for dependency in (1.0, 0.0):
        params = EnvParams(fly_spawn_prob=0.0, dependency=dependency)
        state = state_from_values(ground=[1] * 32, flies=[0] * 32, position=[15, 16], energy=[20, 20])
        positions = []
        for row in table:
            turn, who, action, _, _, _, after, energy, scores = (c.strip() for c in row.strip("|").split("|"))
            assert int(state.turn) == int(turn) and int(state.current_player) == ("Frog", "Toad").index(who)
            state = play(state, actions[action.split(",")[0]], _quiet_noise(params, "pushed" in action), params)
            positions.append(np.asarray(state.position).tolist())
            if dependency == 1.0:
                assert positions[-1] == _pairs(after)
                assert np.asarray(state.energy).tolist() == _pairs(energy)
                assert np.asarray(state.score).tolist() == _pairs(scores)
        if dependency == 1.0:  # the text after the table: codes shown and the obstacle rate
            assert np.asarray(state.action_code).tolist() == [HELPING, JUMPING]
            assert float(state.obstacle_rate) == pytest.approx(0.025)
        else:
            listed = re.search(r"With D = 0 the same actions give positions ([\d/, ]+)", text).group(1)
            assert [_pairs(p) for p in listed.strip(", ").split(", ")] == positions[:5] and positions[5] == positions[4]


def test_the_observation_example_in_game_md_is_what_the_env_shows():
    text = GAME_MD.read_text()
    params = EnvParams(world_width=8)
    state = state_from_values(
        ground=[1, 1, 1, 1, 1, 2, 1, 1], flies=[0, 1, 0, 0, 0, 0, 0, 0], position=[3, 5], energy=[7, 2], score=[4, 3],
        action_code=[JUMPING, 0],
    )  # fmt: skip
    for player, name in enumerate(("Frog", "Toad")):
        shown = [int(x) for x in re.search(rf"^{name}:((?: +\d+)+)$", text, re.M).group(1).split()]
        assert len(shown) == 3 * 8 + 4
        assert shown == np.asarray(observe_given_veil(state, player, params, False)).tolist()
    drawn = text[text.index("```\n *") + 4 :].split("```")[0].rstrip("\n").splitlines()
    assert [line.rstrip() for line in render(state).splitlines()] == drawn
