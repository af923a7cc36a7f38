"""Fail when a pinned package has a newer patch release in its own minor series (issue 17).

Reads `requirements.lock` (`name==version` lines) and asks PyPI's JSON API for each package's
releases. A pin is behind when a release with the same major.minor and a higher version exists
that is not yanked and not a pre-release. A pin held back on purpose is listed in
`scripts/deps-held.txt` as `name==version  # reason`; a line without a reason is refused.

    python scripts/deps_check.py [--lock requirements.lock] [--held scripts/deps-held.txt]

Exit 0: every pin is current (or held with a reason); 1: some are behind (each is listed with
the release to move to); 2: PyPI could not be asked (after retries) or a held line has no
reason. Uses `requests` and `packaging`, both in the lock.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/pypi/{name}/json"
ATTEMPTS = 3


def pins(lock: Path) -> dict[str, Version]:
    found = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.split("[", 1)[0].strip()] = Version(version.strip())
    return found


def held(path: Path) -> dict[str, str]:
    """name==version -> reason; raises ValueError for a line without a reason."""
    entries = {}
    if not path.exists():
        return entries
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        pin, _, reason = raw.partition("#")
        if not pin.strip():
            continue
        if not reason.strip():
            raise ValueError(f"{path.name}:{number}: say why {pin.strip()} is held back")
        entries[pin.strip()] = reason.strip()
    return entries


def releases(name: str) -> list[Version]:
    for attempt in range(ATTEMPTS):
        try:
            answer = requests.get(INDEX.format(name=name), timeout=15)
            answer.raise_for_status()
            data = answer.json()
            break
        except requests.RequestException:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(2**attempt)
    versions = []
    for text, files in data["releases"].items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if files and not all(f.get("yanked") for f in files) and not version.is_prerelease:
            versions.append(version)
    return versions


def newer_patch(pinned: Version, available: list[Version]) -> Version | None:
    same_series = [v for v in available if v.release[:2] == pinned.release[:2] and v > pinned]
    return max(same_series, default=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--held", type=Path, default=ROOT / "scripts" / "deps-held.txt")
    args = parser.parse_args()
    try:
        allowed = held(args.held)
    except ValueError as problem:
        print(problem, file=sys.stderr)
        return 2
    locked = pins(args.lock)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = dict(zip(locked, pool.map(releases, locked), strict=True))
    except requests.RequestException as problem:
        print(f"PyPI could not be asked: {problem}", file=sys.stderr)
        return 2
    behind = []
    for name, pinned in sorted(locked.items(), key=lambda item: item[0].lower()):
        newer = newer_patch(pinned, found[name])
        if newer is None:
            continue
        if f"{name}=={pinned}" in allowed:
            print(f"held    {name}=={pinned} ({newer} exists): {allowed[f'{name}=={pinned}']}")
            continue
        behind.append(f"{name}=={pinned} -> {newer}")
    for line in behind:
        print(f"BEHIND  {line}")
    print(f"{len(locked)} pins checked, {len(behind)} behind a patch release of their series")
    return 1 if behind else 0


if __name__ == "__main__":
    sys.exit(main())
