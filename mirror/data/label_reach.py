"""Which oracle labels (spec §5.4) a dataset can never hold, and the setting that forbids them.

Two labels depend on where the game can go: the oracle leaps only when the next cell is
rough (rule 4 says hop over solid ground), and it helps only at the right edge (rule 2,
f = W-1) or within six cells of it while Toad stands on rough ground and Frog does not
(rule 3, f >= W-6). Hop and jump are always possible: the start ground is all solid, and
half the processed energies are 0 (spec §5.3).

How far right can a player stand at a decision? Positions change only in a turn that
scrolls (hop, leap, help), and every scroll puts the leader back on cell
W//2 + ceil(D * gap / 2) (gap = leader - laggard, D on its grid; exact:
`mirror.env.dynamics.scroll_anchor`). Before that scroll one player moved at most
`leap_distance` cells from a position no further right than the bound so far, and the
laggard stands on cell 0 or right of it, so the gap is at most that bound plus
`leap_distance`. Iterated from the start (the leader on W//2) to its fixed point, this
gives `rightmost_cell`, an upper bound that is exact at D = 0 (W//2: the D = 0 scroll
puts the leader back on the middle cell after every move) and is reached at the default
world for D = 0, 0.5, 0.6 and 1 in generated data. With the default world, help needs
D > 0.6.

`impossible_labels` names only what it can prove; a label that is possible but rare can
still be missing from a small dataset.
"""

from mirror.env.constants import DEPENDENCY_GRID, HELP, HOP, LEAP
from mirror.env.dynamics import dependency_steps
from mirror.env.params import EnvParams

LEAP_RULE = "the oracle leaps only when the cell ahead is rough (spec §5.4 rules 4, 5)"


def help_rule(world_width: int) -> str:
    return (
        f"the oracle helps only from cell W-6 = {world_width - 6} on (at the right edge, or near it when Toad "
        "stands on rough ground: spec §5.4 rules 2, 3)"
    )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def dependency_step(dependency: float) -> int:
    """D as an integer number of 1/DEPENDENCY_GRID steps, rounded as the game rounds it."""
    return int(dependency_steps(dependency))


def rightmost_cell(world_width: int, leap_distance: int, dependency_steps: int) -> int:
    """The rightmost cell any player can stand on at a decision (an upper bound; see the
    module docstring), for D = dependency_steps / DEPENDENCY_GRID."""
    half, last = world_width // 2, world_width - 1
    bound = half  # the start: Frog on W//2 - 1, Toad on W//2
    while True:
        gap = min(bound + max(leap_distance, 1), last)  # a hop moves one cell
        after = min(last, half + _ceil_div(dependency_steps * gap, 2 * DEPENDENCY_GRID))
        if after <= bound:
            return bound
        bound = after


def help_dependency_threshold(world_width: int, leap_distance: int) -> float | None:
    """The largest D (on its grid) at which no player ever reaches cell W-6, or None when
    even D = 0 reaches it (narrow worlds)."""
    target = world_width - 6
    if rightmost_cell(world_width, leap_distance, 0) >= target:
        return None
    low, high = 0, DEPENDENCY_GRID  # rightmost_cell never decreases with D
    if rightmost_cell(world_width, leap_distance, high) < target:
        return 1.0
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if rightmost_cell(world_width, leap_distance, mid) < target else (low, mid)
    return low / DEPENDENCY_GRID


def impossible_labels(params: EnvParams, behaviour_probs) -> dict[int, str]:
    """{label: why the oracle never gives it} for data generated with these env params and
    behaviour-policy probabilities (hop, jump, leap, help); each reason names the setting."""
    w = params.world_width
    probs = [float(p) for p in behaviour_probs]
    frozen = None
    if int(params.episode_turns) <= 2:
        frozen = f"env.episode_turns = {int(params.episode_turns)} (Frog decides only on the first turn of an episode)"
    elif probs[HOP] == probs[LEAP] == probs[HELP] == 0:
        frozen = f"data.behaviour_probs = {probs} (the behaviour policy only jumps, so the world never scrolls)"
    if frozen is not None:
        seen = f"the ground Frog sees is all solid and it stands on its start cell {w // 2 - 1}"
        return {
            LEAP: f"label leap never occurs at {frozen}: {seen}, and {LEAP_RULE}",
            HELP: f"label help never occurs at {frozen}: {seen}, and {help_rule(w)}",
        }

    reasons = {}
    flat = [name for name in ("obstacle_rate_max", "obstacle_rate_step") if float(getattr(params, name)) == 0]
    smooth = f"env.{flat[0]} = {getattr(params, flat[0])}" if flat else None
    if smooth is not None:
        reasons[LEAP] = f"label leap never occurs at {smooth}: no rough cell ever appears, and {LEAP_RULE}"
    k = dependency_step(params.dependency)
    reach = rightmost_cell(w, int(params.leap_distance), k)
    scroll = (
        f"every scroll puts the leader back on cell W//2 + ceil(D * gap / 2), so no player ever stands right of cell "
        f"{reach} (env.world_width = {w}, env.leap_distance = {params.leap_distance})"
    )
    if reach < w - 6:
        threshold = help_dependency_threshold(w, int(params.leap_distance))
        needs = "" if threshold is None or threshold >= 1 else f"; help needs env.dependency > {threshold:g} here"
        reasons[HELP] = (
            f"label help never occurs at env.dependency = {params.dependency}: {help_rule(w)}, and at this dependency {scroll}{needs}"
        )
    elif smooth is not None and reach < w - 1:
        reasons[HELP] = (
            f"label help never occurs at {smooth} and env.dependency = {params.dependency}: Toad never stands on rough "
            f"ground, so the oracle helps only at the right edge (cell W-1 = {w - 1}; spec §5.4 rule 2), and {scroll}"
        )
    return reasons
