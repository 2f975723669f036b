"""`mirror play` reports every episode's scores; figures keep their legends off the data."""

import re

import numpy as np

from mirror.cli import main

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
