"""`sqlassets ui`: the local web UI. Starlette and uvicorn are imported only when it starts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

from sqlassets.cli.context import CliContext


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback requires a token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in the default browser.")
@click.option("--read-only", is_flag=True, help="Turn actions (materialize, backfill, resume, check) off.")
@click.option("--gate", "gate_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CI gate JSON to show on the gate page (default: <state_dir>/ci/gate.json).")
@click.pass_obj
def ui(obj: CliContext, host: str, port: int, open_browser: bool, read_only: bool, gate_file: Path | None) -> None:
    """Local web UI: asset graph, partitions, runs and backfills, checks, column lineage.

    \b
      sqlassets ui                      # http://127.0.0.1:8765/
      sqlassets ui --port 0 --open      # any free port, open a browser
      sqlassets ui --host 0.0.0.0       # reachable from other machines: needs a token
    Actions go through the same planner, leases and state as the CLI; --read-only turns them off.
    """
    from sqlassets.errors import UserError
    from sqlassets.ui.security import TOKEN_ENV, is_loopback

    if gate_file is not None and not gate_file.exists():
        raise UserError(f"--gate {gate_file}: no such file")
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 16:
        raise UserError(f"{TOKEN_ENV} is too short; use at least 16 random characters")
    generated = token is None and not is_loopback(host)
    if generated:
        token = secrets.token_urlsafe(24)
    project, graph = obj.project, obj.graph
    from sqlassets.ui.server import serve

    serve(project, graph, host=host, port=port, token=token, read_only=read_only, open_browser=open_browser,
          gate_file=gate_file, print_token=generated, echo=lambda line: click.echo(line, err=False))
