"""How long ``teledispatch`` takes to start, per verb, against ``python -c pass``.

Every CLI call pays its imports before it does anything; the verbs people type most
(``status``, ``lookup``, ``send`` of a few numbers) must answer well under half a second. Each
command runs ``--repeats`` times in a fresh interpreter on a scratch config and SQLite file
(after one unmeasured warm-up, which also creates the database); the best wall time is kept,
as the machine's other load only ever adds to it. The CPU time (user + system) of the same
runs is reported beside it: on a shared, loaded machine it is the steadier figure.

``python -m bench --only cli`` or ``python -m bench.cli_start [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIG = """
[accounts.demo]
channel = "nxcloud.sms"
base_url = "http://127.0.0.1:9"
access_key = "ak"
secret = "sk"
app_key = "app"
"""

PHONES = ("+8613800138000", "+8613800138001", "+8613800138002")
#: name → the command line after ``python``.
COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "--help": ["-m", "teledispatch.cli.main", "--help"],
    "status": ["-m", "teledispatch.cli.main", "status", "0" * 32],
    "lookup": ["-m", "teledispatch.cli.main", "lookup", "--phone", PHONES[0]],
    "send --dry-run (3)": [
        "-m", "teledispatch.cli.main", "send", "--account", "demo", "--content", "hi",
        "--dry-run", *(a for p in PHONES for a in ("--to", p)),
    ],
}  # fmt: skip
BASELINE = "python -c pass"
#: The bound the CLI's common verbs are held to.
TARGET_S = 0.5


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(repeats: int = 5) -> dict[str, Any]:
    """Best wall time per command (seconds), and its ratio to ``python -c pass``."""
    with tempfile.TemporaryDirectory(prefix="td-cli-bench-") as tmp:
        config = Path(tmp) / "teledispatch.toml"
        config.write_text(CONFIG)
        env = {
            **os.environ,
            "TELEDISPATCH_CONFIG": str(config),
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'td.db'}",
            "REDIS_URL": "redis://127.0.0.1:9/0",
        }
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name, argv in COMMANDS.items():
            _time(argv, env)  # warm-up: page cache, .pyc files, the database's schema
            runs = [_time(argv, env) for _ in range(repeats)]
            best[name] = min(w for w, _ in runs)
            cpu[name] = min(c for _, c in runs)
    base = best[BASELINE]
    return {
        "teledispatch": {
            name: {
                "best_s": round(t, 4),
                "ratio": round(t / base, 1),
                "over_s": round(t - base, 4),
                "cpu_s": round(cpu[name], 4),
            }
            for name, t in best.items()
            if name != BASELINE
        },
        "baseline": {"best_s": round(base, 4), "cpu_s": round(cpu[BASELINE], 4)},
        "repeats": repeats,
        "target_s": TARGET_S,
    }


def table(result: dict[str, Any]) -> str:
    base = result["baseline"]["best_s"]
    lines = [
        f"== CLI start time (best of {result['repeats']}; `python -c pass` = {base:.3f} s) ==",
        f"  {'command':<22}{'seconds':>9}{'× pass':>9}{'over pass':>11}{'CPU s':>8}"
        f"  < {TARGET_S} s",
    ]
    for name, row in result["teledispatch"].items():
        ok = "yes" if row["best_s"] < TARGET_S else "NO"
        lines.append(
            f"  {name:<22}{row['best_s']:>9.3f}{row['ratio']:>9.1f}{row['over_s']:>11.3f}"
            f"{row['cpu_s']:>8.3f}  {ok}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cli_start", description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    result = measure(args.repeats)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
