"""The analysis settings every page shares, their checks, their URL form and their one-line summary.

Data (and an upload's column mapping), guide, student, margin settings, seed, batch size, task and the
false-negative rate of drawn batches are
one :class:`LabSettings` per browser session (app.sidebar keeps it in Session State and binds every
widget to it), so a choice made on one page holds on all of them. :func:`to_params` writes it into the
page URL and :func:`from_params` reads a link back, clamped to what the widgets allow, so a link
reproduces a view. No Streamlit here: the pure part, tested on its own (tests/test_app_settings.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from core.corpus.false_negatives import MAX_RATE
from core.method.margin import MARGIN_RANGE, STRATEGIES, MarginSettings

SOURCES = ("bundled", "upload", "hub")
FLOOR_RANGE = (-0.2, 1.0, 0.05)  # (lowest, highest, step) of the floor slider; the margin's: MARGIN_RANGE
BATCH_RANGE = (2, 1024)
SEED_RANGE = (0, 2**31 - 1)
RATE_RANGE = (0.0, MAX_RATE, 0.05)  # the false-negative rate's input (core.corpus.false_negatives)
PARAMS = ("data", "split", "cols", "guide", "student", "strategy", "margin", "aa", "pp", "floor", "seed", "batch",
          "task", "fn")


@dataclass(frozen=True)
class LabSettings:
    """What the analysis pages compute with. ``student`` "" means no student; ``columns`` is an upload's
    mapping (anchor, positive, negatives...; "" where not picked yet); ``positive_floor`` is kept while
    ``floor_on`` is off, as the slider keeps its place."""

    guide: str
    student: str
    source: str = "bundled"
    hub_id: str = ""
    hub_split: str = "train"
    columns: tuple[str, ...] = ()
    margin_strategy: str = "absolute"
    margin: float = 0.0
    contrast_anchors: bool = True
    contrast_positives: bool = True
    floor_on: bool = False
    positive_floor: float = 0.3
    seed: int = 0
    batch_size: int = 32
    task: str | None = None
    false_negatives: float = 0.0  # drawn batches rebuilt at this rate (0: the data as it is)

    def margin_settings(self) -> MarginSettings:
        return MarginSettings(self.margin_strategy, self.margin, self.contrast_anchors, self.contrast_positives,
                              self.positive_floor if self.floor_on else None)

    def with_margin(self, settings: MarginSettings) -> LabSettings:
        """These settings with ``settings``' margin fields (a run's own, say)."""
        floor = settings.positive_floor
        return clamped(replace(self, margin_strategy=settings.margin_strategy, margin=settings.margin,
                               contrast_anchors=settings.contrast_anchors,
                               contrast_positives=settings.contrast_positives, floor_on=floor is not None,
                               positive_floor=self.positive_floor if floor is None else floor))

    def mapping(self) -> tuple[tuple[str, str], ...]:
        """The upload's (target, source) column pairs, () until anchor and positive are both picked."""
        if len(self.columns) < 2 or not all(self.columns[:2]):
            return ()
        negatives = [c for c in self.columns[2:] if c]
        names = ["negative"] if len(negatives) == 1 else [f"negative_{k}" for k in range(1, len(negatives) + 1)]
        return (("anchor", self.columns[0]), ("positive", self.columns[1]), *zip(names, negatives))


def _clip(value, low, high):
    return min(max(value, low), high)


def _stepped(value: float, bounds: tuple[float, float, float]) -> float:
    """``value`` within (lowest, highest) and on the slider's steps."""
    low, high, step = bounds
    return round(round(_clip(float(value), low, high) / step) * step, 2)


def clamped(s: LabSettings) -> LabSettings:
    """``s`` within the widgets' ranges and steps (margin to 0.01, floor to 0.05); unknown names to defaults."""
    default = LabSettings(s.guide, s.student)
    return replace(
        s,
        source=s.source if s.source in SOURCES else default.source,
        margin_strategy=s.margin_strategy if s.margin_strategy in STRATEGIES else default.margin_strategy,
        margin=_stepped(s.margin, MARGIN_RANGE),
        positive_floor=_stepped(s.positive_floor, FLOOR_RANGE),
        seed=int(_clip(int(s.seed), *SEED_RANGE)),
        batch_size=int(_clip(int(s.batch_size), *BATCH_RANGE)),
        contrast_anchors=bool(s.contrast_anchors), contrast_positives=bool(s.contrast_positives),
        floor_on=bool(s.floor_on), task=s.task or None, false_negatives=_stepped(s.false_negatives, RATE_RANGE),
        columns=tuple(str(c) for c in s.columns),
    )


def to_params(s: LabSettings) -> dict[str, str]:
    """The URL query parameters that name ``s`` (only the data's own: no split for bundled data)."""
    params = {"data": "upload" if s.source == "upload" else f"hub:{s.hub_id}" if s.source == "hub" else "bundled"}
    if s.source == "hub":
        params["split"] = s.hub_split
    if s.source == "upload" and s.mapping():
        params["cols"] = ",".join(s.columns)
    params |= {"guide": s.guide, "student": s.student or "none", "strategy": s.margin_strategy,
               "margin": f"{s.margin:.2f}", "aa": str(int(s.contrast_anchors)), "pp": str(int(s.contrast_positives)),
               "floor": f"{s.positive_floor:.2f}" if s.floor_on else "off", "seed": str(s.seed),
               "batch": str(s.batch_size)}
    if s.task:
        params["task"] = s.task
    if s.false_negatives:
        params["fn"] = f"{s.false_negatives:.2f}"
    return params


def from_params(params: dict[str, str], base: LabSettings) -> tuple[LabSettings, list[str]]:
    """``base`` with what ``params`` (a link's query) sets, clamped; and a line per value it could not use."""
    changes: dict = {}
    problems: list[str] = []

    def number(name: str, kind, field: str) -> None:
        try:
            changes[field] = kind(params[name])
        except ValueError:
            problems.append(f"{name}={params[name]!r} is not a number: kept {getattr(base, field)}")

    if "data" in params:
        data = params["data"]
        if data in ("bundled", "upload"):
            changes["source"] = data
        elif data.startswith("hub:") and data[4:].strip():
            changes |= {"source": "hub", "hub_id": data[4:].strip(), "hub_split": params.get("split") or "train"}
        else:
            problems.append(f"data={data!r} is not bundled, upload or hub:ID: kept {base.source}")
    if "cols" in params:
        changes["columns"] = tuple(params["cols"].split(","))
    if params.get("guide", "").strip():
        changes["guide"] = params["guide"].strip()
    if "student" in params:
        changes["student"] = "" if params["student"].strip() in ("", "none") else params["student"].strip()
    if "strategy" in params:
        if params["strategy"] in STRATEGIES:
            changes["margin_strategy"] = params["strategy"]
        else:
            problems.append(f"strategy={params['strategy']!r} is not {' or '.join(STRATEGIES)}: "
                            f"kept {base.margin_strategy}")
    for name, field in (("aa", "contrast_anchors"), ("pp", "contrast_positives")):
        if name in params:
            changes[field] = params[name].strip().lower() not in ("0", "false", "off", "no")
    if "floor" in params:
        if params["floor"] == "off":
            changes["floor_on"] = False
        else:
            number("floor", float, "positive_floor")
            changes["floor_on"] = "positive_floor" in changes
    if "margin" in params:
        number("margin", float, "margin")
    if "seed" in params:
        number("seed", int, "seed")
    if "batch" in params:
        number("batch", int, "batch_size")
    if "task" in params:
        changes["task"] = params["task"] or None
    if "fn" in params:
        number("fn", float, "false_negatives")
    valid = {f.name for f in fields(LabSettings)}
    settings = clamped(replace(base, **{k: v for k, v in changes.items() if k in valid}))
    ranges = {"margin": MARGIN_RANGE, "positive_floor": FLOOR_RANGE, "seed": SEED_RANGE, "batch_size": BATCH_RANGE,
              "false_negatives": RATE_RANGE}
    for name, field in (("margin", "margin"), ("floor", "positive_floor"), ("seed", "seed"), ("batch", "batch_size"),
                        ("fn", "false_negatives")):
        if field in changes and not ranges[field][0] <= changes[field] <= ranges[field][1]:  # steps are no problem
            problems.append(f"{name}={params[name]} is outside what the page allows: using {getattr(settings, field)}")
    return settings, problems


def describe(s: LabSettings, data: str, size: int | None = None, student: bool = True) -> str:
    """The one "current settings" line: ``data`` names the data as the page shows it, ``size`` the batch
    size in use (clamped to the data's rows), ``student`` False on a page that uses none."""
    floor = f"floor {s.positive_floor:+.2f}" if s.floor_on else "no floor"
    contrast = ", ".join(b for b, on in (("a-a", s.contrast_anchors), ("p-p", s.contrast_positives)) if on)
    parts = [f"data {data}", f"guide {s.guide}"]
    if student:
        parts.append(f"student {s.student or 'none'}")
    parts += [f"{s.margin_strategy} margin {s.margin:+.2f}", f"contrast {contrast or 'off'}", floor,
              f"batch {size if size is not None else s.batch_size}", f"seed {s.seed}"]
    if s.task:
        parts.append(f"task {s.task}")
    if s.false_negatives:
        parts.append(f"false-negative rate {s.false_negatives:.2f}")
    return " · ".join(parts)
