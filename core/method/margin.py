"""The margin settings of the masking rule, without torch: what the CLI's options, the config files
and the pages declare once.

:class:`MarginSettings` says how the guide's positive score g_i becomes a row's threshold (absolute:
g_i - margin; relative: g_i - |g_i| * margin; optionally raised to a positive floor) and which
blocks exist; :func:`margin_problem` names a margin at which nothing is learned; :func:`judge_settings`
is the self-judge's rule (Qwen3-Embedding) in the same terms. The rule itself,
over tensors, is :mod:`core.method.masking`, which re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from core.errors import GistlabError

STRATEGIES = ("absolute", "relative")
MARGIN_RANGE = (-0.2, 0.5, 0.01)  # (lowest, highest, step) the pages offer for the margin
MARGIN_LIMITS = {"absolute": 1.0, "relative": 1.0}  # above (relative: at) it nearly every candidate is masked


def margin_problem(strategy: str, margin: float) -> str | None:
    """Why ``margin`` makes a run learn nothing under ``strategy``, in one sentence, or None.

    Cosines lie in [-1, 1]. Absolute: the threshold g - margin with margin > 1 sits below nearly
    every candidate's cosine, so all are masked and the loss is 0. Relative: g - |g| * margin with
    margin >= 1 is <= 0 for every positive g, so every candidate the guide scores above 0 (nearly
    all) is masked. A very negative margin masks nothing but identical texts: that is MNRL, allowed.
    """
    limit = MARGIN_LIMITS[strategy]
    if margin != margin or abs(margin) == float("inf"):
        return f"the margin must be a finite number, not {margin}"
    too_high = margin > limit if strategy == "absolute" else margin >= limit
    if not too_high:
        return None
    rule, bound = (("g - margin", f"at most {limit:g}") if strategy == "absolute"
                   else ("g - |g| x margin", f"below {limit:g}"))
    article = "an" if strategy == "absolute" else "a"
    return (f"{article} {strategy} margin of {margin:g} puts every row's threshold ({rule}) below nearly every "
            f"cosine, so the guide masks all candidates and the run learns nothing: use a margin {bound} "
            "(the paper's are 0 to 0.1)")


class SettingError(GistlabError, ValueError):
    """A margin setting that cannot work: one line for the user (a GistlabError), a ValueError to code."""


@dataclass(frozen=True)
class MarginSettings:
    """How the guide's positive score becomes a per-row threshold, and which blocks exist.

    A margin that is not a finite number is refused (NaN compares false with everything, so it
    would silently mask nothing). Tensor margins (a sweep's grid, core/analysis/whatif.py) pass as they are.
    """

    margin_strategy: str = "absolute"
    margin: float = 0.0
    contrast_anchors: bool = True
    contrast_positives: bool = True
    positive_floor: float | None = None  # t_i = max(t_i, floor); None = off (library parity)

    def __post_init__(self) -> None:
        if self.margin_strategy not in STRATEGIES:
            raise SettingError(
                f"margin_strategy must be one of {STRATEGIES}, got {self.margin_strategy!r}"
            )
        if isinstance(self.margin, (int, float)) and not math.isfinite(self.margin):
            raise SettingError(f"--margin {self.margin}: give a finite number (the paper's are 0 to 0.1).")
        if self.positive_floor is not None and not -1.0 <= self.positive_floor <= 1.0:
            raise SettingError(f"positive_floor must be a cosine in [-1, 1] or None, got {self.positive_floor!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def library_options(self) -> dict:
        """The settings as keyword arguments of sentence-transformers' ``GISTEmbedLoss`` (which has
        no positive floor: asking for one there is an error)."""
        if self.positive_floor is not None:
            raise ValueError("sentence-transformers' GISTEmbedLoss has no positive floor")
        return {k: v for k, v in self.to_dict().items() if k != "positive_floor"}


JUDGE_MARGIN = 0.1  # Qwen3-Embedding's: a candidate scoring 0.1 above the row's positive is masked


def judge_settings(masking: MarginSettings, judge_margin: float = JUDGE_MARGIN) -> MarginSettings:
    """The self-judge's settings: the student, judging with its own detached cosines, masks candidate
    j of row i when s_ij > s(i, positive_i) + ``judge_margin``. That is the guide rule with the
    absolute margin ``-judge_margin`` (the opposite sign of GIST's), ``masking``'s blocks, and no
    positive floor (a frozen guide's setting)."""
    return replace(masking, margin_strategy="absolute", margin=-judge_margin, positive_floor=None)
