"""Check results for people: terminal lines, a markdown PR comment, GitHub Actions annotations.

Every failure names the asset, partition, check, column and observed vs expected, so a CI log line is
enough to start fixing. Passing checks are summarised per asset; only failures, errors and warnings get
their own lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlassets.check_results import CheckResult

_ICON = {"pass": "✓", "fail": "✗", "error": "!", "skipped": "-"}


def observed_text(r: CheckResult) -> str:
    text = r.details.get("observed_text") if isinstance(r.details, dict) else None
    return str(text if text is not None else r.observed)


def counts(results: Sequence[CheckResult]) -> dict[str, int]:
    c = {"total": len(results), "pass": 0, "fail": 0, "error": 0, "skipped": 0, "blocking": 0, "warnings": 0}
    for r in results:
        c[r.status] = c.get(r.status, 0) + 1
        if r.blocking:
            c["blocking"] += 1
        elif r.status in ("fail", "error"):
            c["warnings"] += 1
    return c


def summary_line(results: Sequence[CheckResult]) -> str:
    c = counts(results)
    parts = [f"{c['total']} checks", f"{c['pass']} passed"]
    if c["fail"]:
        parts.append(f"{c['fail']} failed")
    if c["error"]:
        parts.append(f"{c['error']} errored")
    if c["skipped"]:
        parts.append(f"{c['skipped']} skipped")
    parts.append(f"{c['blocking']} blocking")
    if c["warnings"]:
        parts.append(f"{c['warnings']} warning/info")
    return ", ".join(parts)


def _where(r: CheckResult) -> str:
    return f"{r.asset}[{r.partition}]" if r.partition else r.asset


def _kind(r: CheckResult) -> str:
    """What the check is and, for GX suites, which engine judged it: `gx` (Great Expectations) or `gx/sql`."""
    if r.source.startswith("dbt:"):
        return "dbt test"
    if r.source.startswith("gx:"):
        return "gx/sql" if isinstance(r.details, dict) and r.details.get("engine") == "sql" else "gx"
    return "check"


def result_line(r: CheckResult) -> str:
    """One problem as one line: status, severity, where, check, column, observed vs expected."""
    col = f" column {r.column}" if r.column else ""
    head = f"{r.status.upper():5} {r.severity:8} {_where(r)}  {_kind(r)} {r.check}{col}"
    if r.status == "error":
        return f"{head}: {r.message}"
    if r.status == "skipped":
        return f"{head}: {r.message}"
    return f"{head}: observed {observed_text(r)}; expected {r.expected}"


def terminal(results: Sequence[CheckResult], *, color: bool = False, verbose: bool = False) -> str:
    """The `sqlassets check` output: problems first (blocking, then warnings), then per-asset pass counts."""
    import click

    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    lines: list[str] = []
    blocking = [r for r in results if r.blocking]
    soft = [r for r in results if not r.blocking and r.status in ("fail", "error")]
    skipped = [r for r in results if r.status == "skipped"]
    for r in blocking:
        lines.append(style(f"{_ICON[r.status]} {result_line(r)}", fg="red", bold=True))
    for r in soft:
        lines.append(style(f"{_ICON[r.status]} {result_line(r)}", fg="yellow"))
    for r in skipped:
        lines.append(style(f"{_ICON['skipped']} {result_line(r)}", dim=True))
    per_asset: dict[str, list[CheckResult]] = {}
    for r in results:
        per_asset.setdefault(r.asset, []).append(r)
    for asset, rs in per_asset.items():
        ok = sum(1 for r in rs if r.status == "pass")
        parts = {r.partition for r in rs if r.partition}
        where = f"{asset} ({len(parts)} partition{'s' if len(parts) != 1 else ''})" if parts else asset
        if verbose:
            for r in rs:
                if r.status == "pass":
                    lines.append(style(f"✓ PASS  {r.severity:8} {_where(r)}  {_kind(r)} {r.check}: observed "
                                       f"{observed_text(r)}", fg="green"))
        elif ok == len(rs):
            lines.append(style(f"✓ {where}: {ok} passed", fg="green"))
        else:
            lines.append(f"  {where}: {ok}/{len(rs)} passed")
    c = counts(results)
    line = summary_line(results)
    lines.append(style(line, fg="red" if c["blocking"] else "yellow" if c["warnings"] else "green", bold=True))
    return "\n".join(lines)


# -- markdown PR comment -----------------------------------------------------------------------------------

def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(results: Sequence[CheckResult], *, title: str = "sqlassets CI gate", verdict: str | None = None,
             changed: Sequence[dict[str, Any]] = (), breaking: Sequence[dict[str, Any]] = (),
             build: dict[str, Any] | None = None, column_changes: Sequence[dict[str, Any]] = ()) -> str:
    """A PR comment: verdict, changed assets, breaking column changes, build and check results."""
    c = counts(results)
    out = [f"## {title}", ""]
    if verdict:
        out += [verdict, ""]
    if changed:
        out += [f"### Changed assets ({len(changed)})", "", "| asset | change | rebuilt downstream |",
                "|---|---|---|"]
        for ch in changed:
            out.append(f"| `{_md(ch['asset'])}` | {_md(ch['change'])} | {_md(', '.join(ch.get('downstream', [])) or '-')} |")
        out.append("")
    if breaking:
        out += [f"### Breaking column changes ({len(breaking)})", "",
                "| changed column | change | downstream columns that read it |", "|---|---|---|"]
        for b in breaking:
            reads = ", ".join(f"`{d}`" for d in b.get("downstream", [])) or "-"
            out.append(f"| `{_md(b['asset'])}.{_md(b['column'])}` | {_md(b['change'])} | {reads} |")
        out.append("")
    read = {(b["asset"], b["column"]) for b in breaking}
    harmless = [c for c in column_changes if (c["asset"], c["column"]) not in read]
    if harmless:
        out += [f"### Other column changes ({len(harmless)}, not read downstream)", "",
                "| changed column | change |", "|---|---|"]
        for ch in harmless:  # not `c`: that is the check counts, read below
            out.append(f"| `{_md(ch['asset'])}.{_md(ch['column'])}` | {_md(ch['change'])} |")
        out.append("")
    if build:
        out += ["### Build", "", f"{build.get('done', 0)} partition(s) built, {build.get('failed', 0)} failed, "
                f"{build.get('skipped', 0)} skipped" + (f" — CI database `{build['database']}`"
                                                       if build.get("database") else ""), ""]
        for f in build.get("failures", [])[:20]:
            out.append(f"- ✗ `{_md(f[0])}` [{_md(f[1])}]: {_md(f[2])}")
        if build.get("failures"):
            out.append("")
    out += [f"### Checks: {summary_line(results)}", ""]
    problems = [r for r in results if r.status in ("fail", "error", "skipped")]
    if problems:
        out += ["| | severity | asset | check | column | observed | expected |", "|---|---|---|---|---|---|---|"]
        for r in sorted(problems, key=lambda r: (not r.blocking, r.asset, r.partition or "", r.check)):
            icon = "❌" if r.blocking else "⚠️" if r.status != "skipped" else "➖"
            obs = r.message if r.status in ("error", "skipped") else observed_text(r)
            out.append(f"| {icon} | {r.severity} | `{_md(_where(r))}` | {_md(r.check)} | {_md(r.column or '')} | "
                       f"{_md(obs)} | {_md(r.expected or '')} |")
        out.append("")
    elif c["total"]:
        out += ["All checks passed.", ""]
    return "\n".join(out)


# -- GitHub Actions annotations ---------------------------------------------------------------------------

def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def source_location(r: CheckResult, root: Path, asset_paths: dict[str, str | None]) -> tuple[str | None, int]:
    """File and line that a failure points at: the expectation in its suite, the test's YAML/SQL, or the model."""
    path: str | None = None
    needle: str | None = None
    if r.source.startswith("gx:"):
        path = r.source[3:]
        etype = r.details.get("expectation_type") if isinstance(r.details, dict) else None
        needle = f'"{etype}"' if etype else None
    elif isinstance(r.details, dict) and r.details.get("path"):
        path = str(r.details["path"])
        needle = f"name: {r.column}" if r.column else None
    if path is None:
        path = asset_paths.get(r.asset)
    if path is None:
        return None, 1
    line = 1
    if needle:
        try:
            text = (root / path).read_text(encoding="utf-8")
        except OSError:
            text = ""
        if r.column and r.source.startswith("gx:"):
            # the expectation whose type and column both appear: search type, then column after it
            pat = re.compile(re.escape(needle) + r"[\s\S]{0,400}?" + re.escape(f'"{r.column}"'))
            m = pat.search(text)
        else:
            m = re.search(re.escape(needle), text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
    return path, line


def annotations(results: Iterable[CheckResult], root: Path, asset_paths: dict[str, str | None]) -> list[str]:
    """`::error file=…,line=…,title=…::message` lines for problems (error blocks, warning/notice do not)."""
    out: list[str] = []
    for r in results:
        if r.status not in ("fail", "error"):
            continue
        level = "error" if r.blocking else "warning" if r.severity == "warning" else "notice"
        path, line = source_location(r, root, asset_paths)
        title = f"{r.status} {r.severity}: {_where(r)} {r.check}"
        props = [f"title={_escape_prop(title)}"]
        if path:
            props = [f"file={_escape_prop(path)}", f"line={line}", *props]
        out.append(f"::{level} {','.join(props)}::{_escape_data(result_line(r))}")
    return out


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"
