"""What a run prints while it builds: periodic lines in logs, inline check results, a summary, --quiet."""

from __future__ import annotations

import io

from sqlassets.check_results import CheckResult
from sqlassets.run.progress import Progress


def _days(n: int) -> list[str]:
    return [f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}" for i in range(n)]


def test_plain_lines_every_n_units_not_one_per_partition() -> None:
    out = io.StringIO()
    p = Progress(3156, stream=out, tty=False, every_seconds=3600)
    for day in (_days(3156 // 28 * 28) + _days(28))[:3156]:
        p.unit("fct", (day,), "done", 10, 0.01)
    p.close()
    lines = out.getvalue().splitlines()
    assert 15 <= len(lines) <= 25  # about twenty lines for the whole run
    assert lines[-1].startswith("[3156/3156] 100%  3156 done") and "ETA" not in lines[-1]
    assert "/s" in lines[0] and "ETA" in lines[0] and "last: fct [" in lines[0]


def test_a_line_every_few_seconds_while_slow() -> None:
    out = io.StringIO()
    p = Progress(1000, stream=out, tty=False, every_seconds=0.0)
    p.unit("fct", ("2024-01-01",), "done", 1, 0.1)
    p.unit("fct", ("2024-01-02",), "done", 1, 0.1)
    p.close()
    assert [ln.split()[0] for ln in out.getvalue().splitlines()] == ["[1/1000]", "[2/1000]"]


def test_failures_print_in_full_and_skips_are_counted() -> None:
    out = io.StringIO()
    p = Progress(4, stream=out, tty=False, every_units=100, every_seconds=3600)
    p.unit("fct", ("2024-01-01",), "done", 1, 0.1)
    p.unit("fct", ("2024-01-02",), "failed", None, 0.1, "Binder Error: column x not found")
    p.unit("mart", ("2024-01-02",), "skipped", None, 0.0, "upstream fct [2024-01-02] failed")
    p.unit("mart", ("2024-01-01",), "done", 1, 0.1)
    p.close()
    text = out.getvalue()
    assert "FAILED fct [2024-01-02]: Binder Error: column x not found" in text
    assert "mart [2024-01-02]" not in text.split("\n[")[0]  # the skip is not a line of its own
    assert text.splitlines()[-1].startswith("[4/4] 100%  2 done, 1 failed, 1 skipped")


def test_check_results_inline_then_counted_and_summarised() -> None:
    out = io.StringIO()
    p = Progress(10, stream=out, tty=False, every_units=100, every_seconds=3600)
    for i, day in enumerate(_days(6)):
        p.checks([CheckResult(asset="fct", check="not_null_fct_amount", status="pass", partition=day),
                  CheckResult(asset="fct", check="expect_row_count_between", status="warn", partition=day,
                              severity="warning", message=f"observed {i}")])
    p.checks([CheckResult(asset="fct", check="unique_fct_id", status="fail", partition="2024-01-07",
                          severity="critical", message="3 duplicate rows")])
    text = out.getvalue()
    warns = [ln for ln in text.splitlines() if ln.startswith("WARN")]
    assert len(warns) == 3 and warns[0] == "WARN  expect_row_count_between on fct [2024-01-01]: observed 0"
    assert "further repeats are counted in the summary" in warns[-1]
    assert "FAIL  unique_fct_id on fct [2024-01-07]: 3 duplicate rows" in text
    assert p.check_summary() == "checks: 6 passed, 6 warned, 1 failed"


def test_quiet_prints_failures_only() -> None:
    out = io.StringIO()
    p = Progress(3, stream=out, tty=False, quiet=True, every_units=1)
    p.unit("fct", ("2024-01-01",), "done", 1, 0.1)
    p.unit("fct", ("2024-01-02",), "failed", None, 0.1, "boom")
    p.unit("fct", ("2024-01-03",), "done", 1, 0.1)
    p.close()
    assert out.getvalue().splitlines() == ["FAILED fct [2024-01-02]: boom"]


def test_terminal_bar_shows_rate_and_eta() -> None:
    out = io.StringIO()
    p = Progress(5, stream=out, tty=True, delay=0.0)
    p.unit("fct", ("2024-01-01",), "done", 1, 0.1)
    assert p._bar is not None
    columns = [getattr(c, "text_format", "") for c in p._bar.columns]
    assert "{task.fields[rate]}" in columns and "ETA" in columns
    p.close()
    assert p._bar is None
