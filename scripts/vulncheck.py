"""Known vulnerabilities of the locked set: `make vulncheck` (docs/supply-chain.md).

pip-audit reads the lock files as they are (every pin is hashed: nothing is resolved or
installed) and asks the advisory source (OSV by default) about each pin. Then:

- exit 0: nothing found, or only what the accept file lists with a reason;
- exit 0 with ``vulncheck: NOT CHECKED`` first: the advisory source could not be reached or
  answered about no package (an offline machine must not fail CI; it must not pass silently
  either);
- exit 1: a vulnerability the accept file does not list;
- exit 2: the check itself is broken (a bad accept file, pip-audit missing or failing).

usage: vulncheck.py LOCK... [--accept FILE] [--service osv|pypi] [--osv-url URL]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ACCEPT = ROOT / "requirements" / "vulncheck-accept.toml"
# pip-audit's own timeout is per request; this bounds the whole run.
RUN_TIMEOUT_S = 300
# What pip-audit (requests) says when the advisory source cannot be used.
_UNREACHABLE_MARKERS = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries exceeded",
    "NameResolutionError",
    "ProxyError",
    "SSLError",
    "ServiceError",
    "HTTPError",
    "Could not connect",
    # A proxy or captive portal answering HTML instead of the advisory source.
    "JSONDecodeError",
)


class AcceptFileError(ValueError):
    """The accept file is not a list of {package, id, reason} entries."""


@dataclass(frozen=True)
class Accepted:
    package: str
    id: str
    reason: str


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    ids: tuple[str, ...]  # the advisory's id, then its aliases (CVE, GHSA, PYSEC)
    fix_versions: tuple[str, ...]


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def read_accepted(path: Path) -> list[Accepted]:
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AcceptFileError(f"{path.name}: not valid TOML: {exc}") from exc
    entries = data.get("accept", [])
    if set(data) - {"accept"} or not isinstance(entries, list):
        raise AcceptFileError(f"{path.name}: only [[accept]] entries are allowed")
    accepted = []
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) != {"package", "id", "reason"}:
            raise AcceptFileError(
                f"{path.name}: [[accept]] #{n} needs exactly package, id and reason"
            )
        if not all(isinstance(v, str) and v.strip() for v in entry.values()):
            raise AcceptFileError(
                f"{path.name}: [[accept]] #{n} ({entry.get('id')}): package, id and reason "
                "must be non-empty text: say why the vulnerability does not reach us"
            )
        accepted.append(Accepted(_norm(entry["package"]), entry["id"].strip(), entry["reason"]))
    return accepted


def findings_of(report: dict[str, Any]) -> tuple[list[Finding], list[str], int]:
    """(findings, packages that were not audited, packages audited) of pip-audit's JSON."""
    findings: list[Finding] = []
    skipped: list[str] = []
    audited = 0
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            skipped.append(f"{dep.get('name')}: {dep['skip_reason']}")
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            findings.append(
                Finding(
                    _norm(dep["name"]),
                    dep.get("version", "?"),
                    (vuln["id"], *vuln.get("aliases", [])),
                    tuple(vuln.get("fix_versions", [])),
                )
            )
    return findings, skipped, audited


def accepted_for(finding: Finding, accepted: list[Accepted]) -> Accepted | None:
    for entry in accepted:
        if entry.package == finding.package and entry.id in finding.ids:
            return entry
    return None


def run_pip_audit(lock: Path, args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report, or None and why the source could not be used."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(lock),
        "--disable-pip",
        "--require-hashes",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        "15",
        "--vulnerability-service",
        args.service,
    ]
    if args.osv_url:
        command += ["--osv-url", args.osv_url]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"no answer within {RUN_TIMEOUT_S} s"
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    if isinstance(report, dict):
        return report, ""
    last = (done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
    if any(marker in done.stderr for marker in _UNREACHABLE_MARKERS):
        return None, last[:300]
    raise RuntimeError(f"pip-audit failed (exit {done.returncode}): {last[:500]}")


def check(locks: list[Path], args: argparse.Namespace) -> int:
    accepted = read_accepted(args.accept)
    source = args.osv_url or ("OSV" if args.service == "osv" else "PyPI")
    findings: list[Finding] = []
    skipped: list[str] = []
    audited = 0
    for lock in locks:
        report, why = run_pip_audit(lock, args)
        if report is None:
            print(
                f"vulncheck: NOT CHECKED: the advisory source ({source}) is not reachable: "
                f"{why}. Run `make vulncheck` where it is."
            )
            return 0
        more, more_skipped, more_audited = findings_of(report)
        findings += [f for f in more if f not in findings]
        skipped += more_skipped
        audited += more_audited
    if audited == 0:
        print(
            f"vulncheck: NOT CHECKED: the advisory source ({source}) answered about none of "
            f"the {len(skipped)} locked packages (first: {skipped[0] if skipped else '-'}). "
            "Run `make vulncheck` where it is reachable."
        )
        return 0
    for line in skipped:
        print(f"vulncheck: not audited: {line}")
    bad = 0
    used: set[Accepted] = set()
    for finding in findings:
        name = f"{finding.package} {finding.version} {' / '.join(finding.ids)}"
        entry = accepted_for(finding, accepted)
        if entry is not None:
            used.add(entry)
            print(f"vulncheck: accepted: {name}: {' '.join(entry.reason.split())}")
            continue
        bad += 1
        fixed = ", ".join(finding.fix_versions) or "no fixed release"
        print(f"vulncheck: VULNERABLE: {name} (fixed in: {fixed})")
    for entry in accepted:
        if entry not in used:
            print(f"vulncheck: note: accepted {entry.package} {entry.id} was not found: remove it?")
    print(
        f"vulncheck: {audited} locked packages checked against {source}: "
        f"{bad} vulnerable, {len(used)} accepted"
    )
    if bad:
        print(
            "vulncheck: upgrade (make lock LOCK_FLAGS='--upgrade-package NAME') or accept it "
            f"with a reason in {args.accept.name}"
        )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path)
    parser.add_argument("--accept", type=Path, default=DEFAULT_ACCEPT)
    parser.add_argument("--service", choices=("osv", "pypi"), default="osv")
    parser.add_argument("--osv-url", default="")
    args = parser.parse_args(argv)
    try:
        return check(args.locks, args)
    except (AcceptFileError, RuntimeError, OSError) as exc:
        print(f"vulncheck: error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
