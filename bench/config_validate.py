"""How long `edge-agent validate` takes on a big site file (run: python bench/config_validate.py).

A generated site with 10,000 Modbus sensors, 1,000 OPC UA sensors and 2,000 rules, checked
in-process with the same code as the command (load, include, models, every check), and the
same file with one mistake in every 100th rule, and in every rule, to show the cost of
reporting many errors.
Loading composes with libyaml's C parser (ruamel.yaml.clib) when it is installed, else with
ruamel.yaml's pure-Python parser (about 5x slower on the big file); the first line says which.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from edge_agent.config import yaml_fast
from edge_agent.config.loader import check_site_files


def site_text(sensors: int, nodes: int, rules: int, broken_every: int = 0) -> str:
    lines = [
        "version: 1",
        "site: {id: bench-plant}",
        "connections:",
        "  plc1: {protocol: modbus-tcp, host: 127.0.0.1}",
        '  ua1: {protocol: opcua, endpoint: "opc.tcp://127.0.0.1:4840"}',
        "assets:",
        "  P-1: {name: pump}",
        "sensors:",
    ]
    for index in range(sensors):
        lines.append(
            f"  s{index}: {{connection: plc1, register: {{table: holding, "
            f"address: {index * 2 % 30000}, type: float32}}, unit: bar}}"
        )
    for index in range(nodes):
        lines.append(f'  n{index}: {{connection: ua1, node: "ns=2;s=Tag{index}"}}')
    lines.append("rules:")
    for index in range(rules):
        sensor = f"s{index}" if not broken_every or index % broken_every else f"x{index}"
        lines += [
            f"  - id: rule-{index}",
            "    asset: P-1",
            f"    sensor: {sensor}",
            "    high: {limit: 85, deadband: 3}",
            "    on_delay: 5s",
            '    work_order: {title: "{asset.name}: {value:.1f} {unit}"}',
        ]
    return "\n".join(lines) + "\n"


def measure(path: Path, repeats: int = 3) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(repeats):
        started = time.perf_counter()
        _config, diagnostics = check_site_files(path)
        best = min(best, time.perf_counter() - started)
        count = len(diagnostics)
    return best, count


def main() -> None:
    parser = "C (ruamel.yaml.clib)" if yaml_fast.available() else "pure Python (no clib)"
    print(f"YAML parser: {parser}")
    with tempfile.TemporaryDirectory() as folder:
        for name, text, repeats in (
            ("demo-sized", site_text(6, 3, 4), 5),
            ("1k sensors", site_text(1_000, 100, 200), 3),
            ("10k sensors", site_text(10_000, 1_000, 2_000), 1),
            ("10k, 1% broken", site_text(10_000, 1_000, 2_000, broken_every=100), 1),
            ("10k, all broken", site_text(10_000, 1_000, 2_000, broken_every=1), 1),
        ):
            path = Path(folder) / "site.yaml"
            path.write_text(text, encoding="utf-8")
            seconds, count = measure(path, repeats)
            size = len(text.encode()) / 1e6
            print(
                f"{name:>16}: {size:6.2f} MB, {text.count(chr(10)):6d} lines, "
                f"validated in {seconds * 1000:8.1f} ms (best of {repeats}), {count} diagnostics"
            )


if __name__ == "__main__":
    main()
