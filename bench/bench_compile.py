"""Cold and warm lineage on the generated dbt project with nothing compiled beforehand, next to plain `dbt compile`.

Issue 9's bar: on the generated 5,000-model project, with no manifest at all (a fresh clone), cold
`sqlassets lineage --stats` (dbt parse + one dbt compile + lineage of every model) within 1.2x of plain
`dbt compile` of the same project, and a warm run under 1 s. All three run in new processes, in the same
run, on fresh copies of the project; wall time and CPU time (user + sys of the process and its children:
the machine may be shared, CPU time is the steadier figure) are printed with their ratios, then lineage
coverage: model columns resolved / inferred / unresolved, with unresolved reasons grouped.

    .venv/bin/python bench/bench_compile.py [--models 5000] [--skip-plain]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CHILD_ENV, VENV_BIN, WORK, ratio, table  # noqa: E402
from gen_project import cached_project  # noqa: E402


def run(cmd: list[str], cwd: Path) -> tuple[float, float, bytes]:
    """(wall s, CPU s of the child and its descendants, stdout); raises on a non-zero exit."""
    env = {**CHILD_ENV, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read().decode(errors='replace')[-3000:]}")
        return wall, usage.ru_utime + usage.ru_stime, out.read()


def fresh_copy(src: Path, dest: Path) -> Path:
    """The project as a fresh clone has it: no target/, no state, no warehouse file."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("target", "logs", ".sqlassets", "*.duckdb*", ".gen_key"))
    return dest


def _reason_kind(reason: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "…", reason)[:90]


def coverage(stats: dict) -> tuple[Counter, Counter]:
    """(columns by status, unresolved reasons grouped) from `lineage --stats --format json`."""
    reasons: Counter = Counter()
    for row in stats["unresolved_assets"]:
        reasons[f"asset not followed: {_reason_kind(row['reason'])}"] += 1
    for row in stats["unresolved_columns"]:
        reasons[_reason_kind(row["reason"])] += 1
    return Counter(stats["columns_by_status"]), reasons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--skip-plain", action="store_true", help="do not time plain dbt compile (quick runs)")
    args = ap.parse_args(argv)

    source = cached_project(args.models, verbose=True)
    work = WORK / f"compile-{args.models}"
    work.mkdir(parents=True, exist_ok=True)
    sqlassets = [str(VENV_BIN / "sqlassets")]
    dbt = [str(VENV_BIN / "dbt")]

    rows = []
    plain = None
    if not args.skip_plain:
        ref = fresh_copy(source, work / "plain")
        plain = run([*dbt, "compile", "--quiet", "--project-dir", str(ref), "--profiles-dir", str(ref)], ref)
        rows.append(("plain `dbt compile` (cold, no target/)", f"{plain[0]:.1f}", f"{plain[1]:.1f}", "1.00x", "1.00x"))
    ours = fresh_copy(source, work / "ours")
    cmd = [*sqlassets, "--project", str(ours), "--profiles-dir", str(ours), "lineage", "--stats", "--format", "json"]
    cold = run(cmd, ours)
    warm = run(cmd, ours)
    for label, (wall, cpu, _) in (("sqlassets lineage --stats, cold (parse + compile + lineage)", cold),
                                  ("sqlassets lineage --stats, warm", warm)):
        rows.append((label, f"{wall:.2f}", f"{cpu:.2f}",
                     ratio(wall, plain[0]) if plain else "-", ratio(cpu, plain[1]) if plain else "-"))
    print(f"\n{args.models} models, nothing compiled beforehand")
    print(table(rows, ("what", "wall s", "cpu s", "wall vs plain", "cpu vs plain")))
    print("targets: cold <= 1.20x plain dbt compile; warm < 1 s")

    stats = json.loads(cold[2])
    status, reasons = coverage(stats)
    total = sum(status.values())
    print(f"\ncoverage over {total} columns ({stats['assets']} assets, {stats['assets_with_sql']} with SQL, "
          f"catalog: {stats['catalog']}):")
    for key in ("resolved", "inferred", "declared", "unresolved"):
        print(f"  {key:<10} {status[key]:>7}  {100 * status[key] / max(total, 1):5.1f}%")
    if reasons:
        print("unresolved, by reason:")
        for reason, n in reasons.most_common(12):
            print(f"  {n:>6}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
