"""core.cli.options: the options several commands share, declared once and parsed alike."""

from __future__ import annotations

import argparse

import pytest

from core.cli import build_parser
from core.cli.options import losses, settings_from_args
from core.errors import GistlabError
from core.method.margin import STRATEGIES, MarginSettings
from core.training.config import LOSSES


def test_data_guide_and_margin_options_mean_the_same_in_every_command():
    parser = build_parser()
    shared = ["--data", "x.csv", "--data-columns", "anchor=q,positive=a", "--hf-split", "dev", "--guide", "g",
              "--margin-strategy", "relative", "--margin", "0.1", "--no-contrast-anchors", "--positive-floor", "0.3"]
    for argv in (["inspect", *shared], ["audit", *shared, "--out", "o"], ["train", *shared]):
        args = parser.parse_args(argv)
        assert (args.data, args.data_columns, args.data_split, args.guide) == (
            "x.csv", {"anchor": "q", "positive": "a"}, "dev", "g"), argv[0]
        assert settings_from_args(argparse.Namespace(**{**vars(args), "contrast_positives": True})) == MarginSettings(
            "relative", 0.1, False, True, 0.3)
    for argv in (["mine", "--out", "o"], ["cache"]):
        args = parser.parse_args(argv)
        assert (args.data, args.data_columns, args.data_split, args.guide) == ("bundled", None, "train", None)
    assert "data" not in vars(parser.parse_args(["train"]))  # train leaves unset options to TrainConfig
    assert settings_from_args(parser.parse_args(["inspect"])) == MarginSettings()


def test_choices_and_losses_come_from_the_engine(capsys):
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["audit"]._actions
                  if a.dest == "margin_strategy")
    assert tuple(action.choices) == STRATEGIES
    assert losses("gist,mnrl") == ["gist", "mnrl"]
    for bad in ("gist,triplet", "gist,gist"):
        with pytest.raises(argparse.ArgumentTypeError):
            losses(bad)
    assert all(losses(name) == [name] for name in LOSSES)
    with pytest.raises(GistlabError, match="positive_floor must be a cosine"):
        settings_from_args(argparse.Namespace(**{**vars(MarginSettings()), "positive_floor": 2.0}))
