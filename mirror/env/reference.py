"""Plain-Python reference implementation of Frog and Toad (the oracle for the JAX env).

Written straight from the rules (`docs/game.md`, sections 1-4 and 6) and
the project's API contract, independently of the JAX code. It keeps one object per
player and plain Python lists for the world, so every rule reads as a few lines.
No JAX here: numpy is used only for float32 scalars, because the contract compares
probabilities in float32. The scroll anchor is exact rational arithmetic (`fractions`)
on D rounded to the 1/DEPENDENCY_GRID grid.

How the code maps to the spec:

- §1 World ............ `Player`, `ReferenceGame` (ground, flies, players, obstacle
                          state); `ReferenceGame.new_game` is the start of an episode.
- §2 Turns ............ `ReferenceGame.play`, in the spec's order:
    1. action effect .. `_hop`, `_jump`, `_leap`, `_help`, and `_land` (landing rule);
    2. flies .......... `_move_flies` (spawn, then move, clamp, merge);
    3. scroll ......... `_scroll` (obstacle-rate step, `_scroll_anchor`, shifting the
                          ground and the players) and `_new_cell` (the obstacle rule);
    4. time ........... `_advance_time`.
- §3 Randomness ....... `play` consumes one noise record (float32 uniforms) decoded as
                          in `mirror/env/noise.py`'s docstring.
- §4 Observation ...... `observe` (with the §6 veil applied when `veiled` is true).
- §6 Theory knobs ..... the dependency D in `_scroll_anchor`; the veil in `observe`.

`events` counts what happened (fly eaten, help-leap, rough cell emitted, ...), so tests
can check that a random run exercised the rules.
"""

from __future__ import annotations

import collections
import dataclasses
import fractions
import math
from typing import Any

import numpy as np

from mirror.env.constants import (
    ACTION_CODE_IDLE,
    DEPENDENCY_GRID,
    DISTRESS,
    FLY,
    FROG_IDLE,
    HELP,
    HELPING,
    HOP,
    JUMP,
    JUMPING,
    LEAP,
    LEAPING,
    OBS_MAX,
    ROUGH,
    SOLID,
    TOAD_IDLE,
)

F32 = np.float32
IDLE_CODE = (FROG_IDLE, TOAD_IDLE)  # indexed by player: 0 Frog, 1 Toad


def _scalar(x: Any) -> Any:
    """A 0-d array / numpy scalar / Python number as a numpy scalar."""
    return np.asarray(x).reshape(())


@dataclasses.dataclass
class RefParams:
    """The game parameters as plain Python ints and numpy float32 probabilities."""

    max_energy: int = 20
    fly_energy: int = 4
    leap_cost: int = 1
    leap_distance: int = 5
    help_gift: int = 2
    help_cost: int = 1
    help_leap_prob: np.float32 = F32(0.25)
    rough_cost: int = 1
    fly_spawn_prob: np.float32 = F32(0.01)
    obstacle_rate_step: np.float32 = F32(0.005)
    obstacle_rate_max: np.float32 = F32(0.075)
    obstacle_max_width: int = 4
    episode_turns: int = 200
    dependency: np.float32 = F32(1.0)
    veil: np.float32 = F32(0.0)
    world_width: int = 32

    @classmethod
    def coerce(cls, params: Any = None, **overrides: Any) -> RefParams:
        """Read the fields from an `EnvParams` (or any object with those attributes),
        then apply keyword overrides; missing fields keep the spec defaults."""
        values = {}
        for field in dataclasses.fields(cls):
            if field.name in overrides:
                value = overrides[field.name]
            elif params is not None and hasattr(params, field.name):
                value = getattr(params, field.name)
            else:
                continue
            if isinstance(field.default, np.floating):
                values[field.name] = F32(_scalar(value))
            else:
                values[field.name] = int(_scalar(value))
        return cls(**values)


@dataclasses.dataclass
class Player:
    """One player (spec §1): position, energy, score and the code of its last action."""

    position: int
    energy: int
    score: int = 0
    action_code: int = ACTION_CODE_IDLE  # 0 idle, 6 jumping, 7 leaping, 8 helping


class _NoiseRecord:
    """One turn's noise as numpy float32 arrays (accepts `Noise` or any look-alike)."""

    def __init__(self, noise: Any):
        self.fly_spawn = np.asarray(noise.fly_spawn, dtype=F32)
        self.fly_move = np.asarray(noise.fly_move, dtype=F32)
        self.cell_start = np.asarray(noise.cell_start, dtype=F32)
        self.cell_width = np.asarray(noise.cell_width, dtype=F32)
        self.help_leap = F32(_scalar(noise.help_leap))


class ReferenceGame:
    """The full state of one game plus the rules that advance it."""

    def __init__(
        self,
        params: Any,
        ground: list[int],
        flies: list[bool],
        players: list[Player],
        pending_rough: int = 0,
        pending_solid: bool = False,
        obstacle_rate: Any = 0.0,
        turn: int = 0,
        current_player: int = 0,
    ):
        self.params = params if isinstance(params, RefParams) else RefParams.coerce(params)
        self.width = self.params.world_width
        self.ground = [int(c) for c in ground]
        self.flies = [bool(f) for f in flies]
        self.players = players
        self.pending_rough = int(pending_rough)
        self.pending_solid = bool(pending_solid)
        self.obstacle_rate = F32(obstacle_rate)
        self.turn = int(turn)
        self.current_player = int(current_player)
        self.events: collections.Counter[str] = collections.Counter()
        assert len(self.ground) == self.width and len(self.flies) == self.width

    # ------------------------------------------------------------------ construction

    @classmethod
    def new_game(cls, fly_spawn_u: Any, params: Any = None, **overrides: Any) -> ReferenceGame:
        """Spec §1 start of an episode: all SOLID, Frog at W//2-1, Toad at W//2, full
        energy, flies placed once by the spawn rule from the uniforms `fly_spawn_u`."""
        p = RefParams.coerce(params, **overrides)
        w = p.world_width
        u = np.asarray(fly_spawn_u, dtype=F32)
        return cls(
            p,
            ground=[SOLID] * w,
            flies=[bool(u[i] < p.fly_spawn_prob) for i in range(w)],
            players=[Player(w // 2 - 1, p.max_energy), Player(w // 2, p.max_energy)],
        )

    @classmethod
    def from_state(cls, state: Any, params: Any = None, **overrides: Any) -> ReferenceGame:
        """Copy an `EnvState` (JAX or numpy arrays, unbatched) into Python values."""
        position = np.asarray(state.position)
        energy = np.asarray(state.energy)
        score = np.asarray(state.score)
        code = np.asarray(state.action_code)
        return cls(
            RefParams.coerce(params, **overrides),
            ground=np.asarray(state.ground).tolist(),
            flies=np.asarray(state.flies).tolist(),
            players=[Player(int(position[i]), int(energy[i]), int(score[i]), int(code[i])) for i in range(2)],
            pending_rough=int(_scalar(state.pending_rough)),
            pending_solid=bool(_scalar(state.pending_solid)),
            obstacle_rate=F32(_scalar(state.obstacle_rate)),
            turn=int(_scalar(state.turn)),
            current_player=int(_scalar(state.current_player)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Every `EnvState` field, as numpy values with the canonical dtypes."""
        return {
            "ground": np.asarray(self.ground, np.int8),
            "flies": np.asarray(self.flies, np.bool_),
            "position": np.asarray([pl.position for pl in self.players], np.int32),
            "energy": np.asarray([pl.energy for pl in self.players], np.int32),
            "score": np.asarray([pl.score for pl in self.players], np.int32),
            "action_code": np.asarray([pl.action_code for pl in self.players], np.int8),
            "pending_rough": np.int32(self.pending_rough),
            "pending_solid": np.bool_(self.pending_solid),
            "obstacle_rate": F32(self.obstacle_rate),
            "turn": np.int32(self.turn),
            "current_player": np.int32(self.current_player),
        }

    # ------------------------------------------------------------------ one turn (§2)

    def play(self, action: int, noise: Any) -> None:
        """Apply one turn of `current_player` (spec §2), consuming one noise record."""
        action = int(action)
        noise = noise if isinstance(noise, _NoiseRecord) else _NoiseRecord(noise)
        me = self.current_player
        # 1. action effect
        if action == HOP:
            self._hop(me)
        elif action == JUMP:
            self._jump(me)
        elif action == LEAP:
            self._leap_action(me)
        elif action == HELP:
            self._help(me, 1 - me, noise.help_leap)
        else:
            raise ValueError(f"unknown action {action}")
        # 2. flies
        self._move_flies(noise)
        # 3. scroll, only after hop, leap or help (success irrelevant)
        if action != JUMP:
            self._scroll(noise)
        # 4. time
        self._advance_time()

    def _hop(self, me: int) -> None:
        """hop: if energy > 0 and position + 1 < W: move 1 right, score 1, landing. Free."""
        player = self.players[me]
        player.action_code = ACTION_CODE_IDLE
        if player.energy > 0 and player.position + 1 < self.width:
            player.position += 1
            player.score += 1
            self._land(player)
            self.events["hop"] += 1
        else:
            self.events["hop_blocked"] += 1

    def _jump(self, me: int) -> None:
        """jump: always allowed; a fly at the player's cell is eaten for fly_energy."""
        player = self.players[me]
        player.action_code = JUMPING
        if self.flies[player.position]:
            player.energy = min(self.params.max_energy, player.energy + self.params.fly_energy)
            self.flies[player.position] = False
            self.events["fly_eaten"] += 1

    def _leap(self, player: Player) -> bool:
        """The leap rule (own leap or help-triggered): if energy > 0 and position + L < W:
        pay leap_cost, move L right, landing. Returns whether the player moved."""
        if player.energy > 0 and player.position + self.params.leap_distance < self.width:
            player.energy = max(0, player.energy - self.params.leap_cost)  # never below 0
            player.position += self.params.leap_distance
            self._land(player)
            return True
        return False

    def _leap_action(self, me: int) -> None:
        """leap chosen by the acting player: code 7 if it moved, else idle."""
        moved = self._leap(self.players[me])
        self.players[me].action_code = LEAPING if moved else ACTION_CODE_IDLE
        self.events["leap" if moved else "leap_blocked"] += 1

    def _help(self, me: int, partner: int, help_leap_u: np.float32) -> None:
        """help: if energy_p > 0 and position_q + L < W: (a) gift to a partner below max
        energy (the helper pays help_cost); (b) with the help-leap draw, the partner
        leaps by the leap rule on its own (post-gift) energy. The helper's code is 8
        whenever it had energy, even if the reach check failed; the partner's code is
        untouched by a help-triggered leap."""
        p, q = self.players[me], self.players[partner]
        p.action_code = HELPING if p.energy > 0 else ACTION_CODE_IDLE
        if not (p.energy > 0 and q.position + self.params.leap_distance < self.width):
            self.events["help_blocked"] += 1
            return
        if q.energy < self.params.max_energy:
            q.energy = min(self.params.max_energy, q.energy + self.params.help_gift)
            p.energy = max(0, p.energy - self.params.help_cost)  # never below 0
            self.events["gift"] += 1
        if help_leap_u < self.params.help_leap_prob:
            self.events["help_leap_draw"] += 1
            if self._leap(q):
                self.events["help_leap"] += 1

    def _land(self, player: Player) -> None:
        """landing: on ROUGH ground (before this turn's scroll) lose rough_cost, floor 0."""
        if self.ground[player.position] == ROUGH:
            player.energy = max(0, player.energy - self.params.rough_cost)
            self.events["rough_landing"] += 1

    def _move_flies(self, noise: _NoiseRecord) -> None:
        """Flies: spawn (u < p), then each fly at cell i moves by floor(3u) - 1,
        clamped to [0, W-1]; flies landing on one cell merge."""
        w = self.width
        spawned = [self.flies[i] or bool(noise.fly_spawn[i] < self.params.fly_spawn_prob) for i in range(w)]
        moved = [False] * w
        for i in range(w):
            if spawned[i]:
                step = int(np.floor(F32(3.0) * noise.fly_move[i])) - 1
                moved[min(max(i + step, 0), w - 1)] = True
        self.flies = moved

    def _scroll_anchor(self) -> int:
        """§6: floor(D * (p0 + p1) / 2 + (1 - D) * max(p0, p1)) in exact rationals, with D
        taken on the 1/DEPENDENCY_GRID grid."""
        p0, p1 = self.players[0].position, self.players[1].position
        d = fractions.Fraction(int(np.rint(np.float64(self.params.dependency) * DEPENDENCY_GRID)), DEPENDENCY_GRID)
        return math.floor(d * fractions.Fraction(p0 + p1, 2) + (1 - d) * max(p0, p1))

    def _scroll(self, noise: _NoiseRecord) -> None:
        """Scroll: raise the obstacle rate, shift the ground by anchor - W//2 (new right
        cells from the obstacle rule, new left cells SOLID), shift and clamp positions.
        Flies stay in window coordinates."""
        w = self.width
        self.obstacle_rate = min(self.params.obstacle_rate_max, F32(self.obstacle_rate + self.params.obstacle_rate_step))
        shift = self._scroll_anchor() - w // 2
        if shift > 0:
            new_cells = [self._new_cell(noise.cell_start[k], noise.cell_width[k]) for k in range(shift)]
            self.ground = self.ground[shift:] + new_cells
            self.events["scroll_forward"] += 1
        elif shift < 0:
            self.ground = [SOLID] * (-shift) + self.ground[: w + shift]
            self.events["scroll_back"] += 1
        for player in self.players:
            position = player.position - shift
            if position < 0:
                self.events["clamped_low"] += 1
            if position > w - 1:
                self.events["clamped_high"] += 1
            player.position = min(max(position, 0), w - 1)

    def _new_cell(self, start_u: np.float32, width_u: np.float32) -> int:
        """Obstacle rule for one new right-hand cell: pending rough, then the pending
        closing solid, else start an obstacle (width 1 + floor(max_width * u)) with
        probability obstacle_rate (the rate after this turn's step), else SOLID."""
        if self.pending_rough > 0:
            self.pending_rough -= 1
            self.events["rough_emitted"] += 1
            return ROUGH
        if self.pending_solid:
            self.pending_solid = False
            return SOLID
        if start_u < self.obstacle_rate:
            width = 1 + int(np.floor(F32(self.params.obstacle_max_width) * width_u))
            self.pending_rough = width - 1
            self.pending_solid = True
            self.events["obstacle_started"] += 1
            self.events["rough_emitted"] += 1
            return ROUGH
        return SOLID

    def _advance_time(self) -> None:
        """Time: the turn counter advances and the other player is to act."""
        self.turn += 1
        self.current_player = 1 - self.current_player

    # ------------------------------------------------------------------ observation (§4)

    def _on_rough(self, player: Player) -> bool:
        return self.ground[player.position] == ROUGH

    def _own_code(self, observer: int) -> int:
        """How the observer sees itself: distress on ROUGH, else its idle code."""
        player = self.players[observer]
        return DISTRESS if self._on_rough(player) else IDLE_CODE[observer]

    def _partner_code(self, partner: int) -> int:
        """How the partner is shown: distress on ROUGH, else its last action's code,
        else (idle action) its idle code."""
        player = self.players[partner]
        if self._on_rough(player):
            return DISTRESS
        return player.action_code if player.action_code != ACTION_CODE_IDLE else IDLE_CODE[partner]

    def observe(self, observer: int, veiled: bool = False) -> list[int]:
        """The 100-integer observation of `observer` (spec §4). With `veiled` (§6), every
        Toad idle code (5) on the players line and at index 96 is shown as 4."""
        observer = int(observer)
        partner = 1 - observer
        me, other = self.players[observer], self.players[partner]
        players_line = [0] * self.width
        players_line[me.position] = self._own_code(observer)
        players_line[other.position] = self._partner_code(partner)  # partner wins a shared cell
        own_code = self._own_code(observer)
        if veiled:
            players_line = [FROG_IDLE if c == TOAD_IDLE else c for c in players_line]
            own_code = FROG_IDLE if own_code == TOAD_IDLE else own_code
        flies_line = [FLY if fly else 0 for fly in self.flies]
        return (
            list(self.ground)
            + players_line
            + flies_line
            + [own_code, me.energy, min(me.score, OBS_MAX), me.position]
        )
