"""Start the BigQuery emulator (`bqemulator`) for tests and the sample project; run by `.venv-bqemu/bin/python`.

bqemulator pins an older sqlglot than sqlassets, so it lives in its own venv (`make bqemu-venv`) and runs
as a child process that only this file imports. It prints `READY <rest port>` once it accepts requests,
and exits when its stdin closes (the test process that started it died) or on SIGTERM/SIGINT.

At start-up bqemulator runs `INSTALL spatial` (DuckDB's GEOGRAPHY extension), which downloads it from
the internet and fails offline; nothing sqlassets sends uses GEOGRAPHY, so that step is skipped.

    .venv-bqemu/bin/python tests/adapters/bqemu_launch.py [--port 9050] [--project sqlassets-local]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="REST port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--project", default="sqlassets-local")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    args = parser.parse_args()

    from bqemulator.storage import engine

    engine.DuckDBEngine._load_spatial = lambda self: None  # offline: no extension download (see above)

    from bqemulator.config import LogLevel, Settings
    from bqemulator.server import EmulatorServer

    settings = Settings(rest_host=args.host, rest_port=args.port, grpc_host=args.host, grpc_port=0,
                        default_project_id=args.project, log_level=LogLevel.WARNING,
                        enable_format_extensions=False)

    async def serve() -> None:
        server = EmulatorServer(settings)
        await server.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.watch_stdin:
            def watch() -> None:
                sys.stdin.read()
                loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=watch, daemon=True).start()
        print(f"READY {server.rest_port}", flush=True)
        await stop.wait()
        await server.stop()

    asyncio.run(serve())
    os._exit(0)  # uvicorn/gRPC threads may linger; the emulator holds nothing that needs a clean exit


if __name__ == "__main__":
    main()
