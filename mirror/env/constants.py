"""Codes of the Frog-and-Toad world (spec §1, §2, §4). Shared by the JAX env and the reference."""

import dataclasses

# Ground codes.
SOLID = 1
ROUGH = 2
# Flies layer code.
FLY = 3
# Player codes on the players line and at observation index 96.
FROG_IDLE = 4
TOAD_IDLE = 5
JUMPING = 6
LEAPING = 7
HELPING = 8
DISTRESS = 9
IDLE_CODES = (FROG_IDLE, TOAD_IDLE)
# Stored "most recent action" codes: 0 means idle (hop, or an action that did nothing).
ACTION_CODE_IDLE = 0
ACTION_CODES = (ACTION_CODE_IDLE, JUMPING, LEAPING, HELPING)

# Actions.
HOP = 0
JUMP = 1
LEAP = 2
HELP = 3
NUM_ACTIONS = 4
ACTION_NAMES = ("hop", "jump", "leap", "help")

# Dependency D is read on this grid: the scroll anchor is computed exactly, in integers,
# for D = round(D * DEPENDENCY_GRID) / DEPENDENCY_GRID (spec §6; float arithmetic gets
# floor() wrong at integer boundaries, e.g. D = 0.1 with both players on cell 3).
DEPENDENCY_GRID = 10_000

# Players.
FROG = 0
TOAD = 1

# Observation layout (spec §4).
# Observation layout (spec §4): ground, players line and flies (W cells each), then the
# observer's own code, energy, score and position, 3W + 4 codes in all. The constants
# below are the layout at the spec's width W = 32 (100 codes); `obs_layout(W)` gives it
# at any width.
DEFAULT_WORLD_WIDTH = 32
STATS = 4  # own code, energy, score, position


def obs_size(world_width: int) -> int:
    """3W + 4: the length of an observation (and of a model input) at world width W."""
    return 3 * world_width + STATS


def world_width_of(size: int) -> int:
    """The world width W whose observations have `size` = 3W + 4 codes."""
    width, rest = divmod(size - STATS, 3)
    if rest or width < 1:
        raise ValueError(f"{size} codes is not an observation size 3W + 4")
    return width


@dataclasses.dataclass(frozen=True)
class ObsLayout:
    """Where each part of an observation of world width `width` lives (spec §4)."""

    width: int

    @property
    def size(self) -> int:
        return obs_size(self.width)

    @property
    def ground(self) -> slice:
        return slice(0, self.width)

    @property
    def players(self) -> slice:
        return slice(self.width, 2 * self.width)

    @property
    def flies(self) -> slice:
        return slice(2 * self.width, 3 * self.width)

    @property
    def own_code(self) -> int:
        return 3 * self.width

    @property
    def energy(self) -> int:
        return 3 * self.width + 1

    @property
    def score(self) -> int:
        return 3 * self.width + 2

    @property
    def position(self) -> int:
        return 3 * self.width + 3


def obs_layout(world_width: int) -> ObsLayout:
    return ObsLayout(int(world_width))


def layout_of(obs_or_size) -> ObsLayout:
    """The layout of observations with this many codes (an int, or an array's last axis)."""
    size = obs_or_size if isinstance(obs_or_size, int) else obs_or_size.shape[-1]
    return ObsLayout(world_width_of(size))


_DEFAULT = ObsLayout(DEFAULT_WORLD_WIDTH)
OBS_SIZE = _DEFAULT.size
GROUND_SLICE = _DEFAULT.ground
PLAYERS_SLICE = _DEFAULT.players
FLIES_SLICE = _DEFAULT.flies
OWN_CODE_INDEX = _DEFAULT.own_code
ENERGY_INDEX = _DEFAULT.energy
SCORE_INDEX = _DEFAULT.score
POSITION_INDEX = _DEFAULT.position
# Observations are int8; a score above this saturates (scores keep counting in the state).
OBS_MAX = 127
