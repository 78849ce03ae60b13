"""What OpenLineage events cost a run: the same daily backfill with and without a file transport.

Prints the ratio (with / without) and the cost per partition (a START and a COMPLETE event each, with
schema and column-lineage facets). The one-off import of openlineage-python is done before timing and
reported on its own: it is paid once per run, only when `openlineage:` is configured.

    python bench/bench_openlineage.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

DAYS = 120
REPEATS = 5


def _run(root: Path) -> float:
    from sqlassets.loaders import load_graph
    from sqlassets.project import load_project
    from sqlassets.run.executor import RunOptions, RunRequest, execute_request

    project = load_project(root)
    graph = load_graph(project)
    t = time.perf_counter()
    _, summary = execute_request(project, graph, RunRequest(options=RunOptions()), echo=lambda _: None)
    assert summary is not None and summary.done == DAYS
    return time.perf_counter() - t


def main() -> None:
    from run_support import make_project

    import_s = float(subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                                     "import openlineage.client; print(time.perf_counter() - t)"],
                                    capture_output=True, text=True, check=True).stdout)
    import openlineage.client  # noqa: F401 - imported before timing (measured above)

    work = Path(tempfile.mkdtemp(prefix="bench_ol_"))
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for _ in range(REPEATS):
            for ol in (False, True):
                root = work / ("ol" if ol else "plain")
                shutil.rmtree(root, ignore_errors=True)
                make_project(root, days=DAYS, end="2024-04-30", monthly=False, summary=False, rows_per_day=100)
                if ol:
                    with (root / "sqlassets.yml").open("a") as f:
                        f.write("openlineage:\n  transport: {type: file, log_file_path: ol.jsonl}\n")
                times[ol].append(_run(root))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain, with_ol = min(times[False]), min(times[True])
    print(f"openlineage: {DAYS} daily partitions, best of {REPEATS}: without {plain:.2f}s, with file events "
          f"{with_ol:.2f}s -> {with_ol / plain:.2f}x, {(with_ol - plain) / DAYS * 1000:.1f} ms per partition "
          f"(2 events); one-off import of openlineage-python {import_s:.2f}s")


if __name__ == "__main__":
    main()
