"""The arm colours, in one place: every page draws a loss arm or guide arm in the same colour.

An *arm* is what a run was trained with: ``base`` (an untrained model), ``mnrl`` (no guide),
``gist`` / ``gist-st`` (guided), or, in the guide ladder, the guide itself: ``self``,
``minilm-l6``, ``mpnet-base``. ``minilm-l6`` is the default guide, so a plain ``gist`` run is that
arm and shares its blue. Further seeds of one arm are lighter shades of its hue, so six runs (two
arms x three seeds) read as two families, not six unrelated colours.
"""

from __future__ import annotations

ARM_COLORS = {
    "base": "#7f7f7f",        # grey
    "mnrl": "#e4572e",        # orange
    "gist": "#2f6fdf",        # blue
    "gist-st": "#8e6bbf",     # purple
    "self": "#8c564b",        # brown: the student's own frozen copy as guide
    "minilm-l6": "#2f6fdf",   # blue: the default guide, i.e. what a plain gist run uses
    "mpnet-base": "#1b9e77",  # green: the strong guide
    # the recipes after GIST (gistlab experiment's guide-free or reweighting arms), each its own hue
    "self-judge": "#d95f02",  # dark orange: the student as its own judge
    "mnrl-hard": "#e7298a",   # pink: MNRL with hardness weighting
    "gist-hard": "#66a61e",   # olive green: GIST + hardness weighting
    "mined": "#a6761d",       # ochre: MNRL with guide-filtered mined negatives
}
RECIPE_ARMS = ("self-judge", "mnrl-hard", "gist-hard", "mined")
FALLBACK = "#bcbd22"  # an arm this palette does not know (a Hub guide, a new loss)
GUIDE_ARMS = ("self", "minilm-l6", "mpnet-base")
MAX_LIGHTEN = 0.6  # the last seed of an arm is its hue blended 60% toward white


def guide_arm(guide: str | None) -> str | None:
    """The ladder arm a guide spec belongs to (``bundled:mpnet-base`` -> ``mpnet-base``), or None."""
    if not guide:
        return None
    short = str(guide).removeprefix("bundled:")
    return short if short in GUIDE_ARMS else None


def arm_of(loss: str | None, guide: str | None = None) -> str:
    """The arm a run belongs to: ``base`` without a loss, its ladder guide for a guided loss, else its loss.

    ``gist-st`` keeps its own colour whatever its guide: it compares implementations, not guides.
    """
    if not loss or loss == "none":
        return "base"
    if loss == "gist":
        return guide_arm(guide) or "gist"
    return str(loss)


def experiment_arm(arm: str) -> str:
    """The palette arm of an experiment arm as core.training.results names it: ``base``, ``none`` (MNRL),
    a guide spec (``bundled:mpnet-base`` -> ``mpnet-base``; another guide: ``gist``), a recipe, or a run's
    arm as core.training.results.arm_of names it (``<guide> (hardness)``: gist-hard)."""
    if arm == "base":
        return "base"
    if arm == "none":
        return "mnrl"
    if str(arm).endswith(" (hardness)"):
        return "gist-hard"
    return arm if arm in RECIPE_ARMS else guide_arm(arm) or "gist"


def arm_color(arm: str | None) -> str:
    """The hue of ``arm`` (None: base)."""
    return ARM_COLORS.get(arm or "base", FALLBACK)


def lighter(hex_color: str, amount: float) -> str:
    """``hex_color`` blended with white by ``amount`` (0: unchanged, 1: white)."""
    rgb = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def shades(arm: str | None, count: int) -> list[str]:
    """``count`` colours for runs of one arm: its hue first, each next one lighter."""
    hue = arm_color(arm)
    return [lighter(hue, MAX_LIGHTEN * k / count) for k in range(count)]


def arm_order(arm: str) -> int:
    """Where an arm sorts in legends: base, mnrl, then the guided arms as listed above."""
    arms = list(ARM_COLORS)
    return arms.index(arm) if arm in arms else len(arms)


def run_colors(arms: dict[str, str]) -> dict[str, str]:
    """A colour per name from ``{name: arm}``: each arm's hue, its further names (sorted) lighter."""
    groups: dict[str, list[str]] = {}
    for name, arm in arms.items():
        groups.setdefault(arm, []).append(name)
    colors = {}
    for arm in sorted(groups, key=arm_order):
        names = sorted(groups[arm])
        colors |= dict(zip(names, shades(arm, len(names))))
    return colors
