"""app.palette: one colour per arm, guide specs mapped to ladder arms, later seeds lighter."""

from app.palette import ARM_COLORS, FALLBACK, arm_color, arm_of, guide_arm, lighter, run_colors, shades


def test_ladder_guides_map_to_their_arms():
    assert guide_arm("bundled:mpnet-base") == "mpnet-base"
    assert guide_arm("self") == "self"
    assert guide_arm("org/some-model") is None and guide_arm(None) is None
    assert arm_of("gist", "bundled:minilm-l6") == "minilm-l6"
    assert arm_of("gist", "org/other") == "gist"
    assert arm_of("mnrl", "bundled:mpnet-base") == "mnrl"  # no guide in the loss: the guide field is moot
    assert arm_of("gist-st", "self") == "gist-st"
    assert arm_of(None) == arm_of("none") == "base"


def test_the_arms_of_a_comparison_are_distinct_colours():
    ladder = ["base", "mnrl", "self", "minilm-l6", "mpnet-base"]
    assert len({arm_color(a) for a in ladder}) == len(ladder)
    assert arm_color("gist") == arm_color("minilm-l6")  # a plain gist run uses the default guide
    assert arm_color("unknown-loss") == FALLBACK and arm_color(None) == ARM_COLORS["base"]


def test_later_runs_of_an_arm_are_lighter_shades_of_its_hue():
    assert lighter("#000000", 0.5) == "#808080" and lighter("#2f6fdf", 0) == "#2f6fdf"
    first, second, third = shades("mnrl", 3)
    assert first == ARM_COLORS["mnrl"]
    channels = [[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in (first, second, third)]
    assert all(a <= b <= c for a, b, c in zip(*channels)) and channels[0] != channels[2]
    colors = run_colors({"m-s1": "mnrl", "g-s0": "gist", "m-s0": "mnrl", "b": "base"})
    assert list(colors) == ["b", "m-s0", "m-s1", "g-s0"]  # base, mnrl, then guided arms
    assert colors["m-s0"] == ARM_COLORS["mnrl"] != colors["m-s1"]


def test_experiment_arms_map_to_palette_arms():
    from app.palette import RECIPE_ARMS, experiment_arm

    assert experiment_arm("none") == "mnrl" and experiment_arm("base") == "base"
    assert experiment_arm("bundled:mpnet-base") == "mpnet-base" and experiment_arm("self") == "self"
    assert experiment_arm("some/hub-guide") == "gist"
    assert experiment_arm("bundled:minilm-l6 (hardness)") == "gist-hard"  # a gist-hard run's arm on Results
    for recipe in RECIPE_ARMS:
        assert experiment_arm(recipe) == recipe and arm_color(recipe) != FALLBACK
    assert len({arm_color(a) for a in (*RECIPE_ARMS, "mnrl", "minilm-l6", "mpnet-base", "self")}) == 8
