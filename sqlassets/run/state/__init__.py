"""The run-state store: one interface (`StateStore`) over a SQLite file or a shared PostgreSQL database.

- `store`: the interface and its SQL (runs, steps, materializations, backfills, leases, check results);
- `dialects`: what differs between the two engines, as one table;
- `sqlite` / `postgres`: connecting, and turning a backend's errors into one-line messages;
- `schema`: tables and versioned migrations; `leases`: heartbeats, expiry, who holds what;
- `portable`: `sqlassets state export` / `import` (a JSON Lines file);
- `config`: the `state:` block of sqlassets.yml and `open_state(project)`.
"""

from sqlassets.run.state.config import open_state
from sqlassets.run.state.leases import pid_alive
from sqlassets.run.state.schema import SCHEMA_VERSION
from sqlassets.run.state.sqlite import DB_NAME
from sqlassets.run.state.store import (
    LeaseConflict,
    LeaseLost,
    Materialization,
    StateError,
    StateStore,
    UnitRecord,
)

__all__ = ["DB_NAME", "SCHEMA_VERSION", "LeaseConflict", "LeaseLost", "Materialization", "StateError",
           "StateStore", "UnitRecord", "open_state", "pid_alive"]
