"""What defines a training run: :class:`TrainConfig`, saved as the run's ``config.json``.

Light on purpose (no torch): the CLI validates its options with it before anything heavy loads,
and the job supervisor's config files (``gistlab train --config``) are read back through it.
The masking settings are one :class:`core.method.margin.MarginSettings`; ``config.json`` keeps
them as flat keys (``margin_strategy``, ``margin``, ...), as every run folder and the shipped demo
already hold them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.errors import GistlabError
from core.fsio import write_json_atomic
from core.guides.models import DEFAULT_GUIDE, DEFAULT_STUDENT
from core.method.margin import JUDGE_MARGIN, MarginSettings, judge_settings, margin_problem

LOSSES = ("gist", "mnrl", "gist-st", "self-judge", "mnrl-hard", "gist-hard")
GUIDED = ("gist", "gist-st", "gist-hard")
"""The arms that load a frozen guide (self-judge's judge is the student being trained)."""
HARDNESS_MODES = ("in_batch_negatives", "hard_negatives", "all_negatives")
"""sentence-transformers' ``MultipleNegativesRankingLoss(hardness_mode=...)`` values."""
MARGIN_KEYS = tuple(f.name for f in fields(MarginSettings))
"""config.json's flat keys of :attr:`TrainConfig.masking`."""


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``<out>/config.json`` and read back by the app.

    Give ``steps`` or ``epochs`` (neither: one epoch). ``out=None`` picks
    ``<workspace>/runs/<time>-<loss>-s<seed>``. ``masking`` says how the guide masks (gist and
    gist-st) and which blocks every arm contrasts. ``homogeneous`` draws each batch from one task
    (needs a ``task`` column), as the GIST paper does; otherwise batches mix tasks.
    ``data_columns`` maps pairs columns to the data's names, e.g. ``{"anchor": "question"}``.
    Under several processes (torchrun) ``batch_size`` is per process, and
    ``gather_across_devices`` makes gist and mnrl contrast against the global batch
    (:mod:`core.method.distributed`). ``mini_batch_size`` switches every arm to its GradCache form
    (:class:`core.method.cached_loss.CachedGISTLoss`, the library's ``CachedMultipleNegativesRankingLoss``
    and ``CachedGISTEmbedLoss``): same loss, memory of one mini-batch. ``bf16`` / ``fp16`` go to
    the trainer (:func:`core.training.lifecycle.precision_options`).

    ``judge_margin`` is the self-judge arm's margin: the student masks candidate j of row i when its
    own detached cosine s_ij > s(i, positive_i) + judge_margin (Qwen3-Embedding's 0.1), i.e. the
    guide rule with margin ``-judge_margin`` (:meth:`arm_masking`). ``hardness_mode`` /
    ``hardness_strength`` weight the negatives of mnrl-hard (the library's MNRL options) and
    gist-hard (GIST's mask first, then the same weighting of what is left).
    """

    data: str = "bundled"
    out: str | None = None
    student: str = DEFAULT_STUDENT
    guide: str = DEFAULT_GUIDE
    loss: str = "gist"
    batch_size: int = 32
    steps: int | None = None
    epochs: float | None = None
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    temperature: float = 0.01
    masking: MarginSettings = field(default_factory=MarginSettings)
    seed: int = 0
    max_seq_length: int | None = None
    homogeneous: bool = False
    gather_across_devices: bool = False
    mini_batch_size: int | None = None
    bf16: bool = False
    fp16: bool = False
    data_columns: dict[str, str] | None = None
    data_split: str = "train"
    false_negatives: float = 0.0  # core.corpus.false_negatives: ~rate x batch false-negative candidates per row
    judge_margin: float = JUDGE_MARGIN  # self-judge: mask s_ij > s_ii + judge_margin (student's own cosines)
    hardness_mode: str = "in_batch_negatives"  # mnrl-hard, gist-hard: which negatives are weighted
    hardness_strength: float = 9.0  # mnrl-hard, gist-hard: alpha of Lan et al. 2025 (they use 9)

    def __post_init__(self) -> None:
        # here, not at the top: importing this module stays light (no datasets), as the CLI and pages need
        from core.corpus.data import check_seed
        from core.corpus.false_negatives import MAX_RATE

        if self.steps is None and self.epochs is None:
            self.epochs = 1.0
        problems = [
            (self.loss not in LOSSES, f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}"),
            (self.steps is not None and self.epochs is not None, "give steps or epochs, not both"),
            (self.steps is not None and self.steps < 1, "steps must be at least 1"),
            (self.epochs is not None and self.epochs <= 0, "epochs must be positive"),
            (self.batch_size < 2, "batch size must be at least 2 (in-batch negatives need company)"),
            (self.lr <= 0, "learning rate must be positive"),
            (not 0 <= self.warmup_ratio < 1, "warmup ratio must be in [0, 1)"),
            (self.temperature <= 0, "temperature must be positive"),
            (self.max_seq_length is not None and self.max_seq_length < 1, "max_seq_length must be positive"),
            (self.mini_batch_size is not None and self.mini_batch_size < 1, "mini-batch size must be at least 1"),
            (self.bf16 and self.fp16, "choose bf16 or fp16, not both"),
            (not 0 <= self.false_negatives <= MAX_RATE, f"false_negatives must be a rate in [0, {MAX_RATE}]"),
            (self.hardness_mode not in HARDNESS_MODES,
             f"hardness_mode must be one of {', '.join(HARDNESS_MODES)}, not {self.hardness_mode!r}"),
            (not 0 <= self.hardness_strength < float("inf"), "hardness_strength must be a finite number >= 0"),
            (not abs(self.judge_margin) < float("inf"), "judge_margin must be a finite number"),
        ]
        for bad, message in problems:
            if bad:
                raise GistlabError(f"Bad training setting: {message}.")
        masking = self.arm_masking()
        problem = masking is not None and margin_problem(masking.margin_strategy, masking.margin)
        if problem:
            raise GistlabError(f"Bad training setting: {problem}.")
        check_seed(self.seed)

    def arm_masking(self) -> MarginSettings | None:
        """The settings the arm masks with: none for mnrl and mnrl-hard; for self-judge, ``masking``'s
        blocks with the absolute margin ``-judge_margin`` and no positive floor (a guide's setting)."""
        if self.loss in ("mnrl", "mnrl-hard"):
            return None
        if self.loss == "self-judge":
            return judge_settings(self.masking, self.judge_margin)
        return self.masking

    def to_dict(self) -> dict:
        """config.json: every field, the masking settings as flat keys."""
        flat = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "masking"}
        return flat | asdict(self.masking)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A config from config.json's flat keys (any subset; the rest default)."""
        known = {f.name for f in fields(cls)} - {"masking"}
        unknown = set(data) - known - set(MARGIN_KEYS)
        if unknown:
            raise GistlabError(f"Unknown training settings {', '.join(sorted(unknown))}: remove them.")
        try:
            masking = MarginSettings(**{k: data[k] for k in MARGIN_KEYS if k in data})
        except ValueError as exc:
            raise GistlabError(f"Bad training setting: {exc}.") from None
        return cls(**{k: v for k, v in data.items() if k in known}, masking=masking)

    def save(self, path: Path) -> None:
        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
