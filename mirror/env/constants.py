"""Codes of the Frog-and-Toad world (spec §1, §2, §4). Shared by the JAX env and the reference."""

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
OBS_SIZE = 100
GROUND_SLICE = slice(0, 32)
PLAYERS_SLICE = slice(32, 64)
FLIES_SLICE = slice(64, 96)
OWN_CODE_INDEX = 96
ENERGY_INDEX = 97
SCORE_INDEX = 98
POSITION_INDEX = 99
# Observations are int8; a score above this saturates (scores keep counting in the state).
OBS_MAX = 127
