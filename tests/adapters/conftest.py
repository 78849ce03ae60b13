"""Fixtures for the adapter tests: the BigQuery emulator, once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bqemu_harness import Emulator, start_emulator


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from start_emulator(tmp_path_factory.mktemp("bqemu"))
