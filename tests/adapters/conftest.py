"""A fakesnow server for the Snowflake tests: one per test session, started on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from snowflake_support import require_fakesnow, start_fakesnow


@pytest.fixture(scope="session")
def fakesnow_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    require_fakesnow()
    log = tmp_path_factory.mktemp("fakesnow") / "server.log"
    proc, port = start_fakesnow(log)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except Exception:  # noqa: BLE001
            proc.kill()
