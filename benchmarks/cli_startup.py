"""How fast the `enlarge` command starts: wall time of light commands, against bare Python and `import torch`.

    PYTHONPATH=src python benchmarks/cli_startup.py            # print the table
    PYTHONPATH=src python benchmarks/cli_startup.py --write    # also write docs/results/cli_startup.md

Each command runs in a fresh interpreter (as a user's shell would start it), REPEATS times; the table shows the
median and the best run, and each command's median as a ratio to `import torch` measured in the same run. The
target is `enlarge --help` and `enlarge models` under TARGET_S on an idle machine: they must not import torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine_info import cpu_summary

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results" / "cli_startup.md"
REPEATS = 7
TARGET_S = 0.5
REFERENCE = "import torch"
CASES = {
    "python (nothing)": ["-c", "pass"],
    REFERENCE: ["-c", "import torch"],
    "enlarge --help": ["-m", "enlarge", "--help"],
    "enlarge --version": ["-m", "enlarge", "--version"],
    "enlarge models": ["-m", "enlarge", "models"],
    "enlarge upscale --help": ["-m", "enlarge", "upscale", "--help"],
}
TARGETED = ("enlarge --help", "enlarge models")


def wall_times(args: list[str], repeats: int) -> list[float]:
    """Seconds each of `repeats` fresh `python ARGS` took, output discarded."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def table(repeats: int) -> str:
    """The markdown table of every case, with the machine and its load average."""
    medians, bests = {}, {}
    for name, args in CASES.items():
        times = wall_times(args, repeats)
        medians[name], bests[name] = statistics.median(times), min(times)
    reference = medians[REFERENCE]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"Machine: {cpu_summary()}; load average {load}; {repeats} runs each; Python {sys.version.split()[0]}.",
        "",
        "| command | median (s) | best (s) | median / `import torch` | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name in CASES:
        target = ""
        if name in TARGETED:
            target = f"< {TARGET_S} s: {'met' if medians[name] < TARGET_S else 'MISSED'}"
        lines.append(f"| `{name}` | {medians[name]:.3f} | {bests[name]:.3f} | {medians[name] / reference:.2f} | {target} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.relative_to(REPO)}")
    args = parser.parse_args()
    result = table(args.repeats)
    print(result)
    if args.write:
        command = "PYTHONPATH=src python benchmarks/cli_startup.py --write"
        RESULTS.write_text(f"# CLI start-up time\n\nMade by `{command}`.\n\n{result}")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
