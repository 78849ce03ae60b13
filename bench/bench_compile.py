"""Cold and warm lineage on the generated dbt project with nothing compiled beforehand, next to plain `dbt compile`.

Issue 9's bar: on the generated 5,000-model project, with no manifest at all (a fresh clone), cold
`sqlassets lineage --stats` (dbt parse + one dbt compile + lineage of every model) within 1.2x of plain
`dbt compile` of the same project, and a warm run under 1 s. All three run in new processes, in the same
run, on fresh copies of the project; wall time and CPU time (user + sys of the process and its children:
the machine may be shared, CPU time is the steadier figure) are printed with their ratios, then lineage
coverage: model columns resolved / inferred / unresolved, with unresolved reasons grouped.

The warm figure is the median of `--warm-runs` runs (wall and CPU each); a last row times a warm run after
one model's SQL was edited (dbt parse of the changed project, one model compiled, lineage redone as far
as the change reaches). The load average is printed with the figures: on a shared machine wall time
follows it, CPU time much less.

    .venv/bin/python bench/bench_compile.py [--models 5000] [--skip-plain] [--warm-runs 5] [--reuse]

`--reuse` keeps the previous run's warmed copy (no plain, no cold run): for iterating on the warm path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
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


def _edit_one_model(root: Path) -> str:
    """Add (or, every other run, remove) a comment at the end of one model's SQL: a real edit dbt must parse
    and compile again, whose output columns stay the same (so its children keep their lineage)."""
    path = sorted((root / "models").rglob("*.sql"))[-1]
    text = path.read_text(encoding="utf-8")
    marker = "\n-- bench edit\n"
    path.write_text(text[:-len(marker)] if text.endswith(marker) else text + marker, encoding="utf-8")
    return path.stem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--skip-plain", action="store_true", help="do not time plain dbt compile (quick runs)")
    ap.add_argument("--warm-runs", type=int, default=5, help="warm runs to take the median of")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the last run's warmed copy: time warm runs only (no plain, no cold)")
    args = ap.parse_args(argv)

    source = cached_project(args.models, verbose=True)
    work = WORK / f"compile-{args.models}"
    work.mkdir(parents=True, exist_ok=True)
    sqlassets = [str(VENV_BIN / "sqlassets")]
    dbt = [str(VENV_BIN / "dbt")]

    rows = []
    plain = None
    load_before = os.getloadavg()
    ours = work / "ours"
    cmd = [*sqlassets, "--project", str(ours), "--profiles-dir", str(ours), "lineage", "--stats", "--format", "json"]
    timed: list[tuple[str, tuple[float, float, bytes]]] = []
    if args.reuse and (ours / ".sqlassets").is_dir():
        stats_out = run(cmd, ours)[2]  # brings the copy up to date if the code changed since
    else:
        if not args.skip_plain:
            ref = fresh_copy(source, work / "plain")
            plain = run([*dbt, "compile", "--quiet", "--project-dir", str(ref), "--profiles-dir", str(ref)], ref)
            rows.append(("plain `dbt compile` (cold, no target/)", f"{plain[0]:.1f}", f"{plain[1]:.1f}", "1.00x",
                         "1.00x"))
        fresh_copy(source, ours)
        cold = run(cmd, ours)
        stats_out = cold[2]
        timed.append(("sqlassets lineage --stats, cold (parse + compile + lineage)", cold))
    warms = [run(cmd, ours) for _ in range(max(1, args.warm_runs))]
    timed.append((f"sqlassets lineage --stats, warm (median of {len(warms)})",
                  (statistics.median(w[0] for w in warms), statistics.median(w[1] for w in warms), b"")))
    edited = _edit_one_model(ours)
    timed.append((f"warm after editing {edited} (parse + 1 compile + lineage)", run(cmd, ours)))
    for label, (wall, cpu, _) in timed:
        rows.append((label, f"{wall:.2f}", f"{cpu:.2f}",
                     ratio(wall, plain[0]) if plain else "-", ratio(cpu, plain[1]) if plain else "-"))
    load_after = os.getloadavg()
    print(f"\n{args.models} models, nothing compiled beforehand")
    print(table(rows, ("what", "wall s", "cpu s", "wall vs plain", "cpu vs plain")))
    print("targets: cold <= 1.20x plain dbt compile; warm < 1 s")
    print(f"load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs")

    stats = json.loads(stats_out)
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
