"""`sqlassets state info|migrate|export|import` and `sqlassets unlock`: looking after the run-state store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sqlassets.cli.context import CliContext


@click.group()
def state() -> None:
    """The run-state store: info, migrate, export, import."""


def _open(obj: CliContext, **kw: Any) -> Any:
    from sqlassets.run.state import open_state

    return open_state(obj.project, **kw)


def _age(now: float, ts: float | None) -> str:
    return "-" if ts is None else f"{max(now - ts, 0):.0f} s ago"


def _lease_line(r: dict[str, Any]) -> str:
    now = r["now"]
    who = f"run {r['run_id']}" + (f" (backfill {r['backfill_id']})" if r.get("backfill_id") is not None else "")
    exp = r.get("expires_at")
    if exp is None:
        life = "no expiry (written by an older sqlassets)"
    elif exp < now:
        life = f"expired {now - exp:.0f} s ago"
    else:
        life = f"renewed {_age(now, r.get('heartbeat_at'))}, expires in {exp - now:.0f} s"
    target = f" (target {r['target']})" if r.get("target") else ""
    return f"'{r['asset']}' held by {who}, pid {r['pid']} on {r['host']}, {life}{target}"


@state.command("info")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def info(obj: CliContext, output: str) -> None:
    """Where the state lives, its schema version, row counts and live leases."""
    import json

    from sqlassets.run.state import SCHEMA_VERSION

    with _open(obj, readonly=True) as st:
        counts = {t: st.count(t) for t in ("runs", "backfills", "materializations", "check_results")}
        leases = st.leases() if st.schema_version >= 2 else []
        data = {"backend": st.dialect.name, "location": st.location, "target": st.target,
                "schema_version": st.schema_version,
                "code_schema_version": SCHEMA_VERSION, "counts": counts,
                "leases": [{k: v for k, v in r.items() if k != "now"} for r in leases]}
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"state: {data['backend']} at {data['location']}")
    click.echo(f"target: {data['target']} (records are kept per target)")
    version = data["schema_version"] or "none yet (created by the first run)"
    click.echo(f"schema version: {version} (this sqlassets: {SCHEMA_VERSION})")
    click.echo("rows: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    click.echo(f"leases: {len(leases)}")
    for r in leases:
        click.echo(f"  {_lease_line(r)}")


@state.command("migrate")
@click.pass_obj
def migrate(obj: CliContext) -> None:
    """Bring the state schema up to this sqlassets' version (PostgreSQL needs this once per upgrade)."""
    st = _open(obj, readonly=True)
    try:
        if st._s is None:
            st.close()
            st = _open(obj)  # no database yet: create it at the current version
            click.echo(f"created the state at {st.location} (schema version {st.schema_version})")
            return
        before, after = st.migrate()
        if before == 0:
            click.echo(f"created the state at {st.location} (schema version {after})")
        elif before == after:
            click.echo(f"state at {st.location} is at schema version {after}; nothing to do")
        else:
            click.echo(f"migrated the state at {st.location} from schema version {before} to {after}")
    finally:
        st.close()


@state.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=Path("-"),
                required=False)
@click.option("--sqlite", "sqlite_db", type=click.Path(exists=True, path_type=Path), default=None,
              help="Export this SQLite state (a state.db or a state dir) instead of the project's state.")
@click.pass_obj
def export(obj: CliContext, file: Path, sqlite_db: Path | None) -> None:
    """Write runs, backfills, materializations and check results to FILE (JSON Lines; default stdout)."""
    from sqlassets.errors import UserError
    from sqlassets.run.state import StateStore
    from sqlassets.run.state.portable import export_state, export_to_path

    if sqlite_db is not None:
        folder = sqlite_db if sqlite_db.is_dir() else sqlite_db.parent
        if not sqlite_db.is_dir() and sqlite_db.name != "state.db":
            raise UserError("--sqlite takes a state.db file or the folder holding it", path=str(sqlite_db))
        st = StateStore(folder, readonly=True)
    else:
        st = _open(obj, readonly=True)
    with st:
        if not st.exists:
            raise UserError(f"no state at {st.location} yet; nothing to export")
        if str(file) == "-":
            export_state(st, sys.stdout)
            return
        counts = export_to_path(st, file)
    click.echo(f"exported {', '.join(f'{n} {t}' for t, n in counts.items())} to {file}")


@state.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def import_cmd(obj: CliContext, file: Path) -> None:
    """Load a `state export` FILE into the project's (empty) state, all rows or none."""
    from sqlassets.run.state.portable import _read, import_state

    _read(file)  # a bad file is refused before any state database is created
    with _open(obj) as st:
        counts = import_state(st, file)
        where = st.location
    click.echo(f"imported {', '.join(f'{n} {t}' for t, n in counts.items())} into {where}")


@click.command()
@click.argument("asset", required=False)
@click.option("--run", "run_id", type=int, default=None, help="Clear every lease of this run instead.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def unlock(obj: CliContext, asset: str | None, run_id: int | None, yes: bool) -> None:
    """Clear a lease by hand: `unlock ASSET` or `unlock --run ID` (asks first; --yes to skip).

    Leases expire on their own once their run stops renewing them; this is for when waiting is not an
    option. A run still alive whose lease is cleared stops at its next state write.
    """
    from sqlassets.errors import UserError

    if (asset is None) == (run_id is None):
        raise UserError("unlock takes an ASSET or --run ID (one of them); see `sqlassets state info` for leases")
    with _open(obj, history=True) as st:
        leases = [r for r in st.leases() if (r["asset"] == asset if asset is not None else r["run_id"] == run_id)]
        if not leases:
            what = f"asset '{asset}'" if asset is not None else f"run {run_id}"
            raise UserError(f"no lease on {what}; nothing to unlock (see `sqlassets state info`)")
        for r in leases:
            click.echo(f"lease {_lease_line(r)}")
        live = [r for r in leases if r.get("expires_at") is None or r["expires_at"] >= r["now"]]
        if live:
            click.echo("warning: the holder may still be running: clearing its lease lets another run write "
                       "the same asset (the holder stops at its next state write)")
        if not yes:
            try:
                ok = click.confirm(f"clear {len(leases)} lease(s)?", default=False)
            except click.exceptions.Abort:
                raise UserError("not confirmed (no answer on stdin); pass --yes to unlock without asking") from None
            if not ok:
                click.echo("nothing unlocked")
                sys.exit(1)
        cleared = st.unlock(asset=asset, run_id=run_id)
    click.echo(f"unlocked {len(cleared)} lease(s): {', '.join(sorted(r['asset'] for r in cleared))}")
