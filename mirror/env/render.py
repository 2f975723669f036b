"""Three-line ASCII view of a game (spec §1): flies, players, ground, then the stats."""

import numpy as np

from mirror.env.constants import HELPING, JUMPING, LEAPING, ROUGH
from mirror.env.state import EnvState

_GROUND = {1: "=", 2: "#"}
_PLAYER = {0: "F", 1: "T"}
_ACTION = {0: "idle", JUMPING: "jump", LEAPING: "leap", HELPING: "help"}


def render(state: EnvState) -> str:
    """One game's state (unbatched leaves: ground int8[W], ...) -> a string of 4 lines: flies (`*`), players (`F`, `T`, lower case in distress,
    `X` when both share a cell), ground (`=` solid, `#` rough), energy and score."""
    ground = np.asarray(state.ground)
    flies = np.asarray(state.flies)
    position = np.asarray(state.position)
    width = ground.shape[0]
    fly_line = "".join("*" if f else " " for f in flies)
    players = [" "] * width
    for player in (0, 1):
        cell = int(position[player])
        mark = _PLAYER[player]
        if ground[cell] == ROUGH:
            mark = mark.lower()
        players[cell] = "X" if players[cell] != " " else mark
    ground_line = "".join(_GROUND[int(g)] for g in ground)
    energy, score, code = np.asarray(state.energy), np.asarray(state.score), np.asarray(state.action_code)
    stats = "  ".join(
        f"{name} e={int(energy[p]):2d} s={int(score[p]):3d} {_ACTION.get(int(code[p]), '?')}"
        + (" DISTRESS" if ground[int(position[p])] == ROUGH else "")
        for p, name in ((0, "Frog"), (1, "Toad"))
    )
    turn = int(np.asarray(state.turn))
    return "\n".join([fly_line, "".join(players), ground_line, f"turn {turn:4d}  {stats}"])

