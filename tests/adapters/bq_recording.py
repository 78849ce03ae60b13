"""A recording proxy around a real `bigquery.Client`: every client call the adapter makes, in order.

Golden tests compare this log with the exact statements and API calls each strategy should make. The
calls go on to the real client (pointed at the emulator), so a golden statement is also one the
emulator accepted.
"""

from __future__ import annotations

from typing import Any

RECORDED = ("query", "get_table", "create_dataset", "delete_table", "copy_table", "load_table_from_file",
            "list_tables", "delete_dataset", "cancel_job")


def _ref(x: Any) -> str:
    if isinstance(x, str):
        return x
    for attr in ("full_table_id", "dataset_id"):
        if hasattr(x, "project") and hasattr(x, "dataset_id") and hasattr(x, "table_id"):
            return f"{x.project}.{x.dataset_id}.{x.table_id}"
        if hasattr(x, attr):
            return str(getattr(x, attr))
    return str(x)


class RecordingClient:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[tuple[Any, ...]] = []
        self.default_datasets: set[str] = set()  # of the query jobs (unqualified names resolve there)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in RECORDED:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(self._summary(name, args, kwargs))
            cfg = kwargs.get("job_config")
            if name == "query" and cfg is not None and cfg.default_dataset is not None:
                d = cfg.default_dataset
                self.default_datasets.add(f"{d.project}.{d.dataset_id}")
            return attr(*args, **kwargs)

        return call

    @staticmethod
    def _summary(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        cfg = kwargs.get("job_config")
        if name == "query":
            extra = {}
            if cfg is not None:
                if cfg.dry_run:
                    extra["dry_run"] = True
                if cfg.maximum_bytes_billed:
                    extra["maximum_bytes_billed"] = cfg.maximum_bytes_billed
                extra["labels"] = dict(cfg.labels or {})
            return ("query", args[0], extra)
        if name == "copy_table":
            return ("copy_table", _ref(args[0]), _ref(args[1]), cfg.write_disposition if cfg else None)
        if name == "load_table_from_file":
            return ("load_table_from_file", _ref(args[1]),
                    tuple((f.name, f.field_type) for f in (cfg.schema or [])) if cfg else ())
        if name == "create_dataset":
            return ("create_dataset", _ref(args[0]))
        return (name, *(_ref(a) for a in args))

    def queries(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "query" and not c[2].get("dry_run")]

    def clear(self) -> None:
        self.calls.clear()
