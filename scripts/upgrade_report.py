"""docs/UPGRADES.md from scripts/check_upgrades.sh's work folder: versions that moved, parity figures
locked vs newest, and the tests that fail with the newest set (parity tests, then the suite)."""

from __future__ import annotations

import argparse
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

NAME = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def pins(path: Path) -> dict[str, str]:
    found = (NAME.match(line) for line in path.read_text().splitlines())
    return {m[1].lower().replace("_", "-"): m[2] for m in found if m}


def moved(lock: Path, newest: Path) -> list[str]:
    old, new = pins(lock), pins(newest)
    rows = [f"| {name} | {old.get(name, '-')} | {new.get(name, '-')} |"
            for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name) and name != "torch"]
    return ["| package | locked | newest |", "|---|---|---|", *rows] if rows else ["No version moved."]


def parity(work: Path) -> list[str]:
    locked, newest = (json.loads((work / f"parity-{k}.json").read_text()) for k in ("locked", "newest"))
    head = [f"Locked: {' · '.join(f'{k} {v}' for k, v in locked['versions'].items())}. "
            f"Newest: {' · '.join(f'{k} {v}' for k, v in newest['versions'].items())}.", "",
            "| case | library loss, locked | library loss, newest | gistlab − library, locked | gistlab − library, newest |",
            "|---|---:|---:|---:|---:|"]
    return head + [f"| {a['case']} | {a['library']:.6f} | {b['library']:.6f} | {a['difference']:+.2e} | {b['difference']:+.2e} |"
                   for a, b in zip(locked["rows"], newest["rows"])]


def tests(xml: Path) -> list[str]:
    if not xml.is_file():
        return ["Not run."]
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"- `{case.get('classname')}::{case.get('name')}`: "
              f"{(case.find('failure') if case.find('failure') is not None else case.find('error')).get('message', '').splitlines()[0][:200]}"
              for case in suite.iter("testcase") if case.find("failure") is not None or case.find("error") is not None]
    return [f"{counts['tests']} tests, {counts['failures']} failed, {counts['errors']} errors, "
            f"{counts['skipped']} skipped, in {float(suite.get('time', 0)):.0f} s.", "", *failed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--args", default="")
    args = parser.parse_args()
    lines = ["# What the newest releases change", "",
             f"Made by `bash scripts/check_upgrades.sh{' ' + args.args if args.args else ''}` on "
             f"{time.strftime('%Y-%m-%d')}: a throw-away environment with the newest versions "
             "pyproject.toml allows, beside the locked set (`constraints.txt`). Nothing was upgraded: "
             "see the README's Install section for a deliberate upgrade.", "",
             "## Versions that moved", "", *moved(args.lock, args.work / "newest.txt"), "",
             "## Library parity (scripts/parity_figures.py)", "", *parity(args.work), "",
             "## Parity tests with the newest set (test_loss, test_cached_loss, test_train)", "",
             *tests(args.work / "parity.xml"), "",
             "## The whole suite with the newest set", "", *tests(args.work / "suite.xml"), ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
