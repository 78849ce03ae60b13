"""BigQuery, through `google-cloud-bigquery` (the `sqlassets[bigquery]` extra).

What BigQuery does differently, and what this adapter does about it:

- **Every statement is a job** (a REST round trip of 0.3-2 s plus polling). A unit's statements go in
  one request: a partition replace is one script `BEGIN TRANSACTION; DELETE ...; INSERT ...; COMMIT
  TRANSACTION;`, which BigQuery runs all-or-nothing (a failed or cancelled script rolls back). The
  script keeps its last statement's `@@row_count` and SELECTs it after COMMIT, so the rows a partition
  wrote come back in the same request (a script job reports no DML statistics of its own; listing its
  child jobs would be one more request per unit). Catalog
  reads use the free metadata API (`tables.get`), not INFORMATION_SCHEMA queries, which bill at least
  10 MB each; the lineage catalog reads INFORMATION_SCHEMA.COLUMNS once per dataset.
- **DML has per-table concurrency limits** (a few mutating statements at a time; two transactions on one
  table abort each other with "concurrent update"): writes to one table run one at a time
  (`supports_concurrent_writes = False`), different tables in parallel up to the profile's `threads`,
  and a concurrent-update abort, rate limit or 5xx is retried with backoff (`is_transient`).
- **Queries are billed by bytes scanned.** Incremental tables are created `PARTITION BY` the partition
  column (dbt's `partition_by`, or derived from the partition grain) and `CLUSTER BY` dbt's `cluster_by`;
  the DELETE of a partition compares the partition column itself with constants of its own type, so
  BigQuery prunes to that partition instead of scanning the table. `maximum_bytes_billed` from the
  profile caps every query, and `--dry-run` sends dry-run jobs that report the bytes each partition
  would scan (`dry_run_bytes`).
- **Types**: sqlglot's generic TIMESTAMP is BigQuery's DATETIME. Window bounds are typed to the column
  they are compared with (TIMESTAMP, DATETIME or DATE); where that type is unknown (inside a model's
  SELECT) the column is cast to TIMESTAMP, as dbt-bigquery does for microbatch event-time filters.
- **DDL is not transactional** (only temp tables inside a transaction), but a copy job with
  WRITE_TRUNCATE replaces a table's data and schema atomically and bills nothing: a table is built
  into a staging table and copied over the target. Seeds are load jobs (the CSV never goes through SQL).
- **Time zones**: a unit of a partition in another timezone than UTC runs as a script that starts with
  `SET @@time_zone = '<tz>'`, so casting its window bounds to TIMESTAMP, CURRENT_DATE and DATE(ts)
  read wall-clock time in the partition's timezone, as DuckDB's per-unit `SET TimeZone` does (one
  request still; BigQuery starts every script at UTC, so UTC partitions send nothing extra).
- **Job labels** name the asset and partition (`sqlassets_asset`, `sqlassets_partition`), so billing
  exports and the job history show what each job wrote.
- **CI gate**: the production dataset is cloned table by table (`CREATE TABLE ... CLONE`, zero-copy)
  into a CI dataset created with a default table expiration, so a forgotten CI dataset cleans itself up;
  each production view gets a view over it there (`_ci_view`). The build runs relocated
  (`Warehouse.relocate`): statements through `render`, and every API call (tables.get, copy, load,
  delete, the jobs' default dataset) through `_ref` / `located`, name the CI dataset, never production.

Profile keys, as dbt-bigquery reads them: `method` (oauth, oauth-secrets, service-account,
service-account-json), `project` (or `database`), `dataset` (or `schema`), `location`, `keyfile`,
`keyfile_json`, `token`/`refresh_token`/`client_id`/`client_secret`/`token_uri`, `execution_project`,
`impersonate_service_account`, `priority`, `maximum_bytes_billed`, `job_execution_timeout_seconds`,
`threads`; plus `api_endpoint` (e.g. `http://127.0.0.1:9050` for the bqemulator; a loopback endpoint
gets anonymous credentials) and `row_counts` (read rows written in each script; default true, false
against a loopback endpoint: bqemulator cannot parse `@@row_count`). Secrets stay in memory: never
logged, never written.
"""

from __future__ import annotations

import csv
import json
import re
import threading
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

from sqlglot import exp

from sqlassets.adapters.base import Adapter, ColumnInfo, DryRunSession, Session
from sqlassets.errors import ConfigError, UserError
from sqlassets.run.windows import Template

if TYPE_CHECKING:
    from sqlassets.model import Asset, Relation
    from sqlassets.run.partitions import PartitionsDef

SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform",
          "https://www.googleapis.com/auth/drive")
METHODS = ("oauth", "oauth-secrets", "service-account", "service-account-json")
SENTINEL_BOUNDS = ("__sqlassets_window_start__", "__sqlassets_window_end__")
_LABEL_BAD = re.compile(r"[^a-z0-9_-]+")
_DML = re.compile(r"^\s*(INSERT|DELETE|UPDATE|MERGE)\b", re.IGNORECASE)
# Errors worth retrying: rate limits, 5xx, and aborted transactions on a busy table.
_TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError", "jobRateLimitExceeded",
                                "jobBackendError", "jobInternalError"})
_TRANSIENT_TEXT = ("concurrent update", "could not serialize access", "too many dml statements outstanding",
                   "exceeded rate limits", "try again", "retry")
_LEGACY_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
_GRAIN_UNIT = {"hourly": "HOUR", "daily": "DAY", "weekly": "DAY", "monthly": "MONTH", "yearly": "YEAR"}


def _require(module: str) -> Any:
    """Import a Google SDK module, or fail in one line naming the extra that installs it (MissingExtra)."""
    return BigQueryAdapter.require(module)


def label_value(text: str) -> str:
    """A BigQuery label value: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return _LABEL_BAD.sub("_", text.lower()).strip("_")[:63] or "_"


def job_labels(asset: str, keys: Sequence[str]) -> dict[str, str]:
    keys = [k for k in keys if k]
    labels = {"app": "sqlassets", "sqlassets_asset": label_value(asset)}
    if keys:
        labels["sqlassets_partition"] = label_value(keys[0] if len(keys) == 1 else f"{keys[0]}__{keys[-1]}")
    return labels


def is_dml(sql: str) -> bool:
    return bool(_DML.match(sql))


ROW_COUNT_VAR = "sqlassets_rows"


def script(statements: Sequence[str], *, row_count: bool = False) -> str:
    """Statements as one request: a transaction when they are all DML (BigQuery allows no DDL inside).

    `row_count`: the transaction also keeps the last statement's `@@row_count` and SELECTs it after
    COMMIT, so the rows a partition wrote come back with the script's own result: no child-job listing
    (`jobs.list?parentJobId=`, one more request per unit) and no count query.
    """
    body = ";\n".join(s.strip().rstrip(";") for s in statements)
    if row_count and all(is_dml(s) for s in statements):
        return (f"DECLARE {ROW_COUNT_VAR} INT64;\nBEGIN TRANSACTION;\n{body};\n"
                f"SET {ROW_COUNT_VAR} = @@row_count;\nCOMMIT TRANSACTION;\nSELECT {ROW_COUNT_VAR};")
    if len(statements) > 1 and all(is_dml(s) for s in statements):
        return f"BEGIN TRANSACTION;\n{body};\nCOMMIT TRANSACTION;"
    return body + (";" if len(statements) > 1 else "")


_UTC = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "z", "zulu", "universal", "etc/universal"})


def zoned(sql: str, time_zone: str | None) -> str:
    """`sql` as a script that first sets @@time_zone; unchanged for UTC (where every script starts)."""
    if not time_zone or time_zone.lower() in _UTC:
        return sql
    from sqlassets.run.windows import literal_sql

    return f"SET @@time_zone = {literal_sql(time_zone, 'bigquery')};\n{sql.rstrip().rstrip(';')};"


def bq_type(field: Any) -> str:
    """A SchemaField as a GoogleSQL type: INT64, STRUCT<a INT64>, ARRAY<STRING>, NUMERIC(10, 2)..."""
    t = _LEGACY_TYPES.get(field.field_type, field.field_type)
    if t == "STRUCT":
        t = "STRUCT<" + ", ".join(f"{f.name} {bq_type(f)}" for f in field.fields) + ">"
    elif t in ("NUMERIC", "BIGNUMERIC") and field.precision is not None:
        t = f"{t}({field.precision}" + (f", {field.scale})" if field.scale is not None else ")")
    if field.mode == "REPEATED":
        t = f"ARRAY<{t}>"
    return t


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"bigquery profile: row_counts must be true or false, not {value!r}")


def _is_loopback(endpoint: str) -> bool:
    host = (urlparse(endpoint).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def credentials(options: dict[str, Any]) -> Any:
    """Google credentials for a dbt-bigquery profile output (in memory only; errors never echo secrets)."""
    method = str(options.get("method") or "oauth").lower()
    endpoint = options.get("api_endpoint")
    if endpoint and _is_loopback(str(endpoint)) and method == "oauth":
        # A local emulator takes any request; asking Google for default credentials would fail offline.
        return _require("google.auth.credentials").AnonymousCredentials()
    if method not in METHODS:
        raise ConfigError(f"bigquery profile: unknown method '{method}' (use {', '.join(METHODS)})")
    scopes = list(options.get("scopes") or SCOPES)
    if method == "oauth":
        google_auth = _require("google.auth")
        from google.auth.exceptions import DefaultCredentialsError

        try:
            creds, _ = google_auth.default(scopes=scopes)
        except DefaultCredentialsError:
            raise ConfigError("bigquery profile method oauth: no Google application-default credentials; run "
                              "'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS") from None
    elif method == "oauth-secrets":
        oauth2 = _require("google.oauth2.credentials")
        if not options.get("token") and not options.get("refresh_token"):
            raise ConfigError("bigquery profile method oauth-secrets needs token or refresh_token (with client_id, "
                              "client_secret, token_uri)")
        creds = oauth2.Credentials(token=options.get("token"), refresh_token=options.get("refresh_token"),
                                   client_id=options.get("client_id"), client_secret=options.get("client_secret"),
                                   token_uri=options.get("token_uri") or "https://oauth2.googleapis.com/token",
                                   scopes=scopes)
    else:
        sa = _require("google.oauth2.service_account")
        if method == "service-account":
            keyfile = options.get("keyfile")
            if not keyfile:
                raise ConfigError("bigquery profile method service-account needs keyfile: <path to the JSON key>")
            path = Path(str(keyfile)).expanduser()
            if not path.is_file():
                raise ConfigError(f"bigquery profile: keyfile {path} not found")
            try:
                creds = sa.Credentials.from_service_account_file(str(path), scopes=scopes)
            except (ValueError, KeyError):
                raise ConfigError(f"bigquery profile: keyfile {path} is not a service-account JSON key") from None
        else:
            info = options.get("keyfile_json")
            if isinstance(info, str):
                try:
                    info = json.loads(info)
                except ValueError:
                    info = None
            if not isinstance(info, dict):
                raise ConfigError("bigquery profile method service-account-json needs keyfile_json: the key's "
                                  "fields as a mapping")
            try:
                creds = sa.Credentials.from_service_account_info(info, scopes=scopes)
            except (ValueError, KeyError):
                # The message would quote the key: say only which field is wrong.
                raise ConfigError("bigquery profile: keyfile_json is not a valid service-account key "
                                  "(needs type, client_email, private_key, token_uri)") from None
    target = options.get("impersonate_service_account")
    if target:
        impersonated = _require("google.auth.impersonated_credentials")
        creds = impersonated.Credentials(source_credentials=creds, target_principal=str(target),
                                         target_scopes=scopes, lifetime=3600)
    return creds


_COMPILE_KEY: list[str] = []
# Profile keys dbt-bigquery needs to compile a model the way a run names relations; no credentials.
_COMPILE_KEYS = ("project", "database", "dataset", "schema", "location", "execution_project", "priority",
                 "maximum_bytes_billed", "job_execution_timeout_seconds", "job_retries", "threads")


def compile_profile_output(options: dict[str, Any], key_file: Path | None = None) -> dict[str, Any]:
    """A dbt-bigquery profile output for `dbt compile` only: the user's project, dataset and location, and
    a key generated here for a service account that does not exist (compiling sends no request).

    dbt-bigquery opens a client, and so needs credentials, even for `compile --no-introspect`; with this
    output compiling works offline and without a Google login, and no real secret reaches the file.
    """
    if not _COMPILE_KEY and key_file is not None and key_file.is_file():
        _COMPILE_KEY.append(key_file.read_text())  # the same key each run keeps dbt's partial parse valid
    if not _COMPILE_KEY:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        _COMPILE_KEY.append(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode())
        if key_file is not None:
            from sqlassets.dbt.invoke import write_private

            write_private(key_file, _COMPILE_KEY[0])
    out = {k: options[k] for k in _COMPILE_KEYS if k in options}
    project = str(options.get("project") or options.get("database") or "sqlassets-compile")
    out.update({"type": "bigquery", "method": "service-account-json", "threads": 1, "keyfile_json": {
        "type": "service_account", "project_id": project, "private_key_id": "sqlassets-compile-only",
        "private_key": _COMPILE_KEY[0], "client_email": "compile-only@sqlassets.invalid",
        "client_id": "0", "token_uri": "https://oauth2.googleapis.com/token"}})
    return out


class BigQuerySession(Session):
    """One worker's jobs: labels for the unit it writes, the job in flight (to cancel on Ctrl-C).

    `begin()` ... `commit()` collects statements and sends them as one script at commit, so a caller
    that runs a transaction statement by statement still costs one request.
    """

    def __init__(self, adapter: BigQueryAdapter) -> None:
        self.adapter = adapter
        self.labels: dict[str, str] = {"app": "sqlassets"}
        self.time_zone: str | None = None  # the unit's partition timezone (`zoned`)
        self.bytes_processed = 0
        self.result: Any = None  # the rows of the last job
        self._buffer: list[str] | None = None
        self._job: Any = None
        self._lock = threading.Lock()

    # -- tags ----------------------------------------------------------------------------------------
    def set_query_tag(self, tag: str | None) -> None:
        """A base-class JSON tag ({"asset": ..., "partition": ...}) becomes this session's job labels."""
        labels = {"app": "sqlassets"}
        if tag:
            try:
                data = json.loads(tag)
            except ValueError:
                data = {"asset": tag}
            if data.get("asset"):
                labels["sqlassets_asset"] = label_value(str(data["asset"]))
            if data.get("partition"):
                labels["sqlassets_partition"] = label_value(str(data["partition"]).replace("..", "__"))
        self.labels = labels

    def set_labels(self, asset: str, keys: Sequence[str]) -> None:
        self.labels = job_labels(asset, keys)

    # -- jobs ----------------------------------------------------------------------------------------
    def job_config(self, *, dry_run: bool = False, params: Sequence[Any] = ()) -> Any:
        return self.adapter.job_config(self.labels, dry_run=dry_run, params=params)

    def run_job(self, sql: str, *, statements: int = 1, params: Sequence[Any] = (), qualified: bool = False) -> Any:
        """Send one query job and wait for it; Ctrl-C cancels it (a cancelled script rolls back).

        Retries (rate limits, 5xx) stop after the profile's `job_retry_deadline_seconds`, not the SDK's
        ten minutes: an unreachable or failing endpoint is an error in seconds."""
        a = self.adapter
        self.count(1, statements)
        job = a.client.query(sql, job_config=a.job_config(self.labels, params=params, default_dataset=not qualified),
                             location=a.location, job_id_prefix="sqlassets_", **a.retries())
        with self._lock:
            self._job = job
        try:
            self.result = job.result(timeout=a.job_timeout)
        except KeyboardInterrupt:
            self.interrupt()
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised as one line without the SDK's job dump
            raise a.error(exc, sql) from None
        finally:
            with self._lock:
                self._job = None
        self.bytes_processed += int(job.total_bytes_processed or 0)
        return job

    def execute(self, sql: str) -> int | None:
        if self._buffer is not None:
            self._buffer.append(sql)
            return None
        text = zoned(sql, self.time_zone)
        return self.run_job(text, statements=1 + (text != sql)).num_dml_affected_rows

    def run_atomic(self, statements: Sequence[str]) -> int | None:
        """A unit in one request: one statement as is, several as one script (see `script`)."""
        statements = [s for s in statements if s.strip()]
        if not statements:
            return None
        zone = bool(self.time_zone) and str(self.time_zone).lower() not in _UTC
        # The row count rides in the script; a lone statement reports its own, unless the time zone
        # makes it a script too.
        counted = (self.adapter.row_counts and all(is_dml(s) for s in statements)
                   and (len(statements) > 1 or zone))
        body = script(statements, row_count=counted)
        if counted and zone:  # DECLARE must open the script, before SET @@time_zone
            declare, rest = body.split("\n", 1)
            text = f"{declare}\n{zoned(rest, self.time_zone)}"
        else:
            text = zoned(body, self.time_zone)
        job = self.run_job(text, statements=len(statements) + (text != body))
        if not counted:
            return job.num_dml_affected_rows if len(statements) == 1 else None
        # The script's result is its last statement's, the SELECT of the row count (first page, no request).
        for row in self.result:
            value = row[0]
            return int(value) if value is not None else None
        return None

    def query(self, sql: str, params: Sequence[Any] = (), *, qualified: bool = False) -> list[tuple[Any, ...]]:
        job = self.run_job(sql, params=params, qualified=qualified)
        return [tuple(row.values()) for row in job.result()]

    def begin(self) -> None:
        self._buffer = []

    def commit(self) -> None:
        statements, self._buffer = self._buffer or [], None
        self.run_atomic(statements)

    def rollback(self) -> None:
        self._buffer = None  # nothing was sent; a failed script rolled itself back

    def interrupt(self) -> None:
        with self._lock:
            job = self._job
        if job is not None:
            try:
                self.adapter.client.cancel_job(job.job_id, location=job.location)
            except Exception:  # noqa: BLE001 - best effort: the job may have finished meanwhile
                pass


class BigQueryAdapter(Adapter):
    type: ClassVar[str] = "bigquery"
    dialect: ClassVar[str] = "bigquery"
    extra: ClassVar[str | None] = "bigquery"
    supports_transactions = True  # multi-statement transactions, as scripts
    supports_transactional_ddl = False  # only temp tables may be created inside a transaction
    supports_merge = True
    supports_delete_insert = True
    supports_insert_overwrite = False
    supports_concurrent_writes = False  # per-table DML limits; concurrent transactions on a table abort
    supports_rename_across_schema = False
    supports_multi_statement = True
    supports_swap = False
    supports_clone = True
    remote = True

    def __init__(self, warehouse: Any, **_options: Any) -> None:
        super().__init__(warehouse)
        opts = dict(warehouse.options or {})
        self.options = opts
        self.project: str | None = opts.get("project") or opts.get("database") or warehouse.database
        self.dataset: str = str(opts.get("dataset") or opts.get("schema") or warehouse.schema)
        self.location: str | None = opts.get("location")
        self.execution_project: str | None = opts.get("execution_project") or self.project
        self.maximum_bytes_billed = self._int_option("maximum_bytes_billed")
        self.job_timeout = self._int_option("job_execution_timeout_seconds") or None
        # Rows written per unit read in the script itself (`script(row_count=True)`); bqemulator cannot
        # parse `@@row_count`, so it is off by default against a loopback (emulator) endpoint.
        self.row_counts = _flag(opts.get("row_counts"), not _is_loopback(str(opts.get("api_endpoint") or "")))
        self.priority = str(opts.get("priority") or "interactive").upper()
        if self.priority not in ("INTERACTIVE", "BATCH"):
            raise ConfigError(f"bigquery profile: priority must be interactive or batch, not {opts.get('priority')!r}")
        if not self.project:
            raise ConfigError("bigquery profile needs project: <GCP project id>")
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._datasets: set[tuple[str, str]] = set()
        # Column types of tables read through `columns()`: window bounds in a DELETE on that table are
        # typed like its partition column (see `render`).
        self._types: dict[tuple[str, ...], dict[str, str]] = {}

    def _int_option(self, key: str) -> int | None:
        value = self.options.get(key)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"bigquery profile: {key} must be a whole number, not {value!r}") from None

    # -- connection ----------------------------------------------------------------------------------
    @classmethod
    def connect_args(cls, options: dict[str, Any]) -> dict[str, Any]:
        """`bigquery.Client` keyword arguments from a dbt-bigquery profile output (holds credentials)."""
        kwargs: dict[str, Any] = {
            "project": options.get("execution_project") or options.get("project") or options.get("database"),
            "credentials": credentials(options),
        }
        if options.get("location"):
            kwargs["location"] = options["location"]
        if options.get("api_endpoint"):
            from google.api_core.client_options import ClientOptions

            kwargs["client_options"] = ClientOptions(api_endpoint=str(options["api_endpoint"]))
        return kwargs

    @property
    def client(self) -> Any:
        """One `bigquery.Client` shared by every session (it is thread-safe and pools connections)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    bigquery = _require("google.cloud.bigquery")
                    self._client = bigquery.Client(**self.connect_args(self.options))
        return self._client

    def open(self) -> None:
        _ = self.client

    def new_session(self) -> Session:
        return BigQuerySession(self)

    def close(self) -> None:
        super().close()
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            self._client = None

    def set_timezone(self, session: Session, timezone: str | None) -> None:
        """The unit's writes run with @@time_zone set to it (`zoned`): no extra request."""
        if isinstance(session, BigQuerySession):
            session.time_zone = timezone

    def job_config(self, labels: dict[str, str], *, dry_run: bool = False, params: Sequence[Any] = (),
                   default_dataset: bool = True) -> Any:
        from google.cloud import bigquery

        cfg = bigquery.QueryJobConfig(labels=dict(labels), use_legacy_sql=False)
        if default_dataset:  # unqualified names in raw SQL assets (`FROM daily`) are the profile's dataset
            cfg.default_dataset = ".".join(self.located(self.project, self.dataset))
        if self.maximum_bytes_billed:
            cfg.maximum_bytes_billed = self.maximum_bytes_billed
        if self.priority == "BATCH":
            cfg.priority = bigquery.QueryPriority.BATCH
        if dry_run:
            cfg.dry_run = True
            cfg.use_query_cache = False
        if params:
            cfg.query_parameters = [_param(bigquery, v) for v in params]
        return cfg

    def retries(self) -> dict[str, Any]:
        from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

        deadline = float(self._int_option("job_retry_deadline_seconds") or
                         (15 if _is_loopback(str(self.options.get("api_endpoint") or "")) else 120))
        return {"retry": DEFAULT_RETRY.with_deadline(deadline), "job_retry": DEFAULT_JOB_RETRY.with_deadline(deadline)}

    def error(self, exc: BaseException, sql: str = "") -> Exception:
        """An SDK error as one line, secrets masked; keeps the original type for `is_transient`."""
        message = getattr(exc, "message", None) or str(exc)
        line = " ".join(str(message).split("\n\n")[0].split())
        if "bytes billed" in line.lower() or "bytesBilledLimitExceeded" in str(getattr(exc, "errors", "")):
            line += f" (maximum_bytes_billed is {self.maximum_bytes_billed} in the profile)"
        line = self._redact(line)
        from google.api_core.exceptions import GoogleAPICallError

        if isinstance(exc, GoogleAPICallError):
            try:
                return type(exc)(line, errors=list(exc.errors or []))
            except Exception:  # noqa: BLE001 - an SDK exception type with another signature
                pass
        return UserError(line)

    def _redact(self, text: str) -> str:
        text = self.redact(text)
        info = self.options.get("keyfile_json")
        if isinstance(info, dict) and isinstance(info.get("private_key"), str):
            text = text.replace(info["private_key"], "****")
        return text

    # -- rendering -----------------------------------------------------------------------------------
    def render(self, expression: exp.Expression) -> str:
        """BigQuery SQL, with partition-window bounds typed to the column they bound (see the module doc)."""
        if any(isinstance(lit, exp.Literal) and lit.this in SENTINEL_BOUNDS for lit in expression.find_all(exp.Literal)):
            expression = self._type_windows(expression.copy())
        weeks = [t for t in expression.find_all(exp.DateTrunc, exp.TimestampTrunc, exp.DatetimeTrunc)
                 if isinstance(t.args.get("unit"), exp.Var | exp.Literal) and t.args["unit"].name.upper() == "WEEK"]
        if weeks:
            # `date_trunc('week', d)` read from DuckDB, Snowflake or Postgres starts weeks on Monday, but
            # sqlglot writes BigQuery's WEEK, which starts on Sunday. BigQuery's own `WEEK` parses as
            # WEEK(SUNDAY) (a WeekStart), so a bare WEEK unit here came from another dialect.
            expression = expression.copy()
            for t in expression.find_all(exp.DateTrunc, exp.TimestampTrunc, exp.DatetimeTrunc):
                unit = t.args.get("unit")
                if isinstance(unit, exp.Var | exp.Literal) and unit.name.upper() == "WEEK":
                    t.set("unit", exp.WeekStart(this=exp.var("MONDAY")))
        return super().render(expression)

    def _type_windows(self, tree: exp.Expression) -> exp.Expression:
        known: dict[str, str] = {}
        if isinstance(tree, exp.Delete) and isinstance(tree.this, exp.Table):
            known = self._types.get(self._key_of(tree.this), {})
        for lit in list(tree.find_all(exp.Literal)):
            if lit.this not in SENTINEL_BOUNDS:
                continue
            bound = lit.parent if isinstance(lit.parent, exp.Cast) else lit
            cmp = bound.parent
            other = None
            if isinstance(cmp, exp.Binary) and not isinstance(cmp, exp.Connector):
                other = cmp.expression if cmp.this is bound else cmp.this
            ts = exp.Cast(this=exp.Literal.string(lit.this), to=exp.DataType.build("TIMESTAMPTZ"))
            if not isinstance(other, exp.Column):
                bound.replace(ts)
                continue
            col_type = (known or self._source_types(cmp)).get(other.name.lower(), "").upper()
            if col_type == "DATE":
                bound.replace(exp.Cast(this=ts, to=exp.DataType.build("DATE")))
            elif col_type == "DATETIME":
                bound.replace(exp.Cast(this=exp.Literal.string(lit.this), to=exp.DataType.build("DATETIME",
                                                                                                  dialect="bigquery")))
            elif col_type == "TIMESTAMP":
                bound.replace(ts)
            else:  # unknown type (a column inside a SELECT): compare as TIMESTAMP, like dbt-bigquery
                bound.replace(ts)
                if not (isinstance(other.parent, exp.Cast)):
                    other.replace(exp.Cast(this=other.copy(), to=exp.DataType.build("TIMESTAMPTZ")))
        return tree

    def _source_types(self, node: exp.Expression) -> dict[str, str]:
        """Column types of the one table a filter reads (`SELECT * FROM upstream WHERE event_time ...`,
        dbt microbatch's upstream filter): typed bounds let BigQuery prune the upstream's partitions.
        From the free metadata API, once per table; unknown (joins, CTEs, subqueries) gives {}."""
        select = node.find_ancestor(exp.Select)
        if select is None or select.args.get("joins"):
            return {}
        source = select.args.get("from_") or select.args.get("from")
        table = source.this if source is not None else None
        if not isinstance(table, exp.Table) or not (table.catalog and table.db and table.name):
            return {}
        key = self._key_of(table)
        if key not in self._types:
            try:
                found = self._get_table(table)
            except Exception:  # noqa: BLE001 - no types only means the column is cast (still correct)
                found = None
            self._types[key] = {f.name.lower(): bq_type(f) for f in found.schema} if found is not None else {}
        return self._types[key]

    def table(self, relation: Relation, identifier: str | None = None) -> exp.Table:
        """Always project.dataset.table: a raw SQL asset's relation names no project (or dataset)."""
        return exp.table_(identifier or relation.identifier, db=relation.schema or self.dataset,
                          catalog=relation.database or self.project, quoted=True)

    @staticmethod
    def _key_of(table: exp.Table) -> tuple[str, ...]:
        return tuple(p.lower() for p in (table.catalog, table.db, table.name))

    def _ref(self, relation: Relation | exp.Table) -> str:
        """`project.dataset.table` for an API call (tables.get, copy, load, delete): where the relation
        really is, so in the CI gate every lookup and write goes to the CI dataset, as the SQL does."""
        if isinstance(relation, exp.Table):
            project, dataset, name = relation.catalog or self.project, relation.db or self.dataset, relation.name
        else:
            project = relation.database or self.project
            dataset = relation.schema or self.dataset
            name = relation.identifier
        project, dataset = self.located(str(project), str(dataset))
        return f"{project}.{dataset}.{name}"

    def located(self, project: str | None, dataset: str) -> tuple[str, str]:
        """(project, dataset) where a dataset the project names really is: its CI copy in the CI gate
        (`Warehouse.relocate`), else itself."""
        project = project or str(self.project)
        if self._relocate:
            dst = self._relocate.get((project.lower(), dataset.lower()))
            if dst is not None:
                return dst[0] or project, dst[1]
        return project, dataset

    # -- table options (partitioning, clustering) -----------------------------------------------------
    def table_properties(self, session: Session, asset: Asset, pdef: PartitionsDef | None,
                         select: exp.Expression, keys: Sequence[str]) -> exp.Properties | None:
        """PARTITION BY / CLUSTER BY for a table the asset writes (dbt's partition_by / cluster_by).

        Without `partition_by`, a time-partitioned asset is partitioned by its partition column at its
        grain (DAY for daily and weekly), so a partition's DELETE prunes; the column's type (DATE or
        TIMESTAMP...) comes from a dry run of the query (free), once, when the table is created.
        """
        cfg = asset.config or {}
        if isinstance(session, BigQuerySession):
            session.set_labels(asset.key, keys)
        types: dict[str, str] = {}
        if not cfg.get("partition_by") and pdef is not None and getattr(pdef, "grain", None):
            sql = Template(self.render(select), self.dialect).render(pdef, list(keys))
            types = {c.name.lower(): c.type for c in self.query_columns(session, sql)}
        return self.properties(asset, pdef, types)

    def properties(self, asset: Asset, pdef: PartitionsDef | None,
                   column_types: dict[str, str]) -> exp.Properties | None:
        cfg = asset.config or {}
        props: list[exp.Expression] = []
        part = partition_expression(cfg.get("partition_by"), pdef, column_types, where=asset.path or asset.key)
        if part is not None:
            props.append(exp.PartitionedByProperty(this=part))
        cluster = cfg.get("cluster_by")
        if isinstance(cluster, str):
            cluster = [c.strip() for c in cluster.split(",") if c.strip()]
        if cluster:
            if not isinstance(cluster, list) or len(cluster) > 4:
                raise UserError(f"{asset.path or asset.key}: cluster_by must be up to 4 column names")
            props.append(exp.Cluster(expressions=[exp.column(str(c), quoted=True) for c in cluster]))
        if cfg.get("require_partition_filter") is not None or cfg.get("partition_expiration_days") is not None:
            opts = []
            if cfg.get("require_partition_filter") is not None:
                opts.append(exp.Property(this=exp.var("require_partition_filter"),
                                         value=exp.Boolean(this=bool(cfg["require_partition_filter"]))))
            if cfg.get("partition_expiration_days") is not None:
                opts.append(exp.Property(this=exp.var("partition_expiration_days"),
                                         value=exp.Literal.number(int(cfg["partition_expiration_days"]))))
            props.extend(opts)
        return exp.Properties(expressions=props) if props else None

    # -- catalog -------------------------------------------------------------------------------------
    def _get_table(self, relation: Relation | exp.Table) -> Any:
        from google.api_core.exceptions import NotFound

        try:
            return self.client.get_table(self._ref(relation))
        except NotFound:
            return None

    def relation_type(self, session: Session, relation: Relation) -> str | None:
        """From the metadata API (free), not INFORMATION_SCHEMA (a billed query)."""
        if isinstance(session, BigQuerySession):
            session.count(1, 0)
        table = self._get_table(relation)
        if table is None:
            return None
        return "view" if table.table_type in ("VIEW", "MATERIALIZED_VIEW") else "table"

    def columns(self, session: Session, relation: Relation) -> list[ColumnInfo]:
        if isinstance(session, BigQuerySession):
            session.count(1, 0)
        table = self._get_table(relation)
        if table is None:
            return []
        cols = [ColumnInfo(f.name, bq_type(f)) for f in table.schema]
        key = (str(relation.database or self.project).lower(), str(relation.schema or self.dataset).lower(),
               relation.identifier.lower())
        self._types[key] = {c.name.lower(): c.type for c in cols}
        return cols

    def query_columns(self, session: Session, select_sql: str) -> list[ColumnInfo]:
        """A dry-run job: BigQuery returns the result schema without running (or billing) the query."""
        job = self.dry_run(session, select_sql)
        return [ColumnInfo(f.name, bq_type(f)) for f in (job.schema or [])]

    def dry_run(self, session: Session, sql: str) -> Any:
        labels = session.labels if isinstance(session, BigQuerySession) else {"app": "sqlassets"}
        if isinstance(session, BigQuerySession):
            session.count(1, 1)
        try:
            return self.client.query(sql, job_config=self.job_config(labels, dry_run=True), location=self.location,
                                     **self.retries())
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc, sql) from None

    def dry_run_bytes(self, session: Session, statements: Sequence[str]) -> int:
        """Bytes the statements would scan (and bill, before the 10 MB per-query minimum), from dry runs.

        Each statement of a unit is dry-run on its own: BigQuery does not estimate scripts.
        """
        return sum(int(self.dry_run(session, s).total_bytes_processed or 0) for s in statements if s.strip())

    def ensure_schema(self, session: Session, relation: Relation) -> None:
        """The dataset, through the API (in the profile's location), once per run."""
        project, dataset = self.located(relation.database or self.project, relation.schema or self.dataset)
        if (project, dataset) in self._datasets:
            return
        from google.cloud import bigquery

        ds = bigquery.Dataset(f"{project}.{dataset}")
        if self.location:
            ds.location = self.location
        self._api(session, f"create dataset {project}.{dataset} if missing",
                  lambda: self.client.create_dataset(ds, exists_ok=True))
        self._datasets.add((project, dataset))

    def endpoint(self) -> tuple[str, int] | None:
        from urllib.parse import urlsplit

        url = urlsplit(str(self.options.get("api_endpoint") or "https://bigquery.googleapis.com"))
        return url.hostname or "bigquery.googleapis.com", url.port or (80 if url.scheme == "http" else 443)

    def catalog(self, session: Session, schemas: Sequence[tuple[str | None, str]] = ()
                ) -> list[tuple[str, str, str, str, str]]:
        """(project, dataset, table, column, type) from INFORMATION_SCHEMA.COLUMNS: one query for all datasets."""
        pairs = list(schemas) or [self.located(self.project, self.dataset)]
        selects = [
            exp.select("table_catalog", "table_schema", "table_name", "column_name", "data_type", "ordinal_position")
            .from_(exp.Table(this=exp.to_identifier("COLUMNS"), db=exp.to_identifier("INFORMATION_SCHEMA"),
                             catalog=exp.Dot(this=exp.to_identifier(db or self.project, quoted=True),
                                             expression=exp.to_identifier(schema, quoted=True))))
            for db, schema in pairs
        ]
        sql = " UNION ALL ".join(s.sql(dialect=self.dialect) for s in selects)
        sql = f"SELECT * FROM ({sql}) ORDER BY table_schema, table_name, ordinal_position"
        rows = (session.query(sql, qualified=True) if isinstance(session, BigQuerySession)  # type: ignore[call-arg]
                else session.query(sql))
        return [tuple(r[:5]) for r in rows]  # type: ignore[misc]

    # -- table replace, seeds, CI clones ---------------------------------------------------------------
    def swap(self, session: Session, staging: exp.Table, target: exp.Table, target_kind: str | None) -> int | None:
        """Copy job staging -> target with WRITE_TRUNCATE (atomic, free), then drop the staging table.

        A view in the way is dropped first. A target whose partitioning differs from the staging table
        cannot take a copy: it is dropped and copied again (dbt drops it too when partition_by changes).
        Returns the rows the copy job reports it copied (a CREATE TABLE AS job reports none; dbt-bigquery
        asks tables.get for them, one more request).
        """
        from google.cloud import bigquery

        if target_kind == "view":
            self._delete(session, target)
        cfg = bigquery.CopyJobConfig(write_disposition="WRITE_TRUNCATE", labels=self._labels(session))
        try:
            rows = self._copy(session, staging, target, cfg)
        except Exception as exc:  # noqa: BLE001
            if "partition" not in str(exc).lower() and "clustering" not in str(exc).lower():
                raise self.error(exc) from None
            self._delete(session, target)
            rows = self._copy(session, staging, target, cfg)
        self._delete(session, staging)
        return rows

    def _labels(self, session: Session) -> dict[str, str]:
        return dict(session.labels) if isinstance(session, BigQuerySession) else {"app": "sqlassets"}

    def _copy(self, session: Session, source: exp.Table, target: exp.Table, cfg: Any) -> int | None:
        def copy() -> int | None:
            job = self.client.copy_table(self._ref(source), self._ref(target), job_config=cfg, location=self.location)
            job.result(timeout=self.job_timeout)
            copied = ((getattr(job, "_properties", None) or {}).get("statistics") or {}).get("copy", {}).get("copiedRows")
            return int(copied) if copied is not None else None

        return self._api(session, f"copy job {self._ref(source)} -> {self._ref(target)} ({cfg.write_disposition})",
                         copy)

    def _delete(self, session: Session, table: exp.Table) -> None:
        self._api(session, f"delete table {self._ref(table)} if it exists",
                  lambda: self.client.delete_table(self._ref(table), not_found_ok=True))

    def _api(self, session: Session, what: str, call: Any) -> Any:
        """A writing API call (dataset, copy, load, delete): one request; under --dry-run printed, not sent."""
        if isinstance(session, DryRunSession):
            session.count(1, 0)
            session.echo(f"-- API: {what}")
            return None
        if isinstance(session, BigQuerySession):
            session.count(1, 0)
        return call()

    def dry_run_session(self, inner: Session | None, echo: Any) -> Session:
        return BigQueryDryRunSession(self, inner, echo)

    def load_seed(self, session: Session, path: Path, staging: exp.Table, column_types: dict[str, str]) -> int | None:
        """A load job (WRITE_TRUNCATE) of the CSV into the staging table, with dbt's inferred column types.

        Types: `column_types` where given, else inferred like dbt's agate (INT64, FLOAT64, BOOL, DATE,
        DATETIME, STRING); a load job then parses the file server-side, with no SQL literals involved.
        """
        from google.cloud import bigquery

        schema = [_schema_field(bigquery, name, typ) for name, typ in seed_schema(path, column_types)]
        cfg = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.CSV, skip_leading_rows=1, schema=schema,
                                     write_disposition="WRITE_TRUNCATE", allow_quoted_newlines=True,
                                     labels=self._labels(session))

        def load() -> int | None:
            with path.open("rb") as fh:
                try:
                    job = self.client.load_table_from_file(fh, self._ref(staging), job_config=cfg,
                                                           location=self.location)
                    job.result(timeout=self.job_timeout)
                except Exception as exc:  # noqa: BLE001
                    raise UserError(f"seed {path.name}: BigQuery load job failed: {self.error(exc)}") from None
            return job.output_rows

        cols = ", ".join(f"{f.name} {f.field_type}" for f in schema)
        return self._api(session, f"load job {path.name} -> {self._ref(staging)} ({cols}; WRITE_TRUNCATE)", load)

    def load_csv_select(self, path: Path, column_types: dict[str, str]) -> exp.Expression:
        raise UserError(f"seed {path.name}: BigQuery cannot read local files in SQL; seeds are load jobs")

    def clone_schema(self, session: Session, source: tuple[str | None, str], target: tuple[str | None, str]) -> None:
        """The CI dataset: zero-copy `CLONE` of every table (billed only for what the CI run changes),
        a view over each production view (`_ci_view`). The dataset expires its tables after a day by default, so a
        CI dataset left behind (--keep, a crash) does not cost storage for long. A CI dataset an earlier
        run kept is dropped first, as Snowflake's `CREATE OR REPLACE SCHEMA ... CLONE` replaces its
        schema: nothing of an earlier build survives into this one.
        """
        from google.cloud import bigquery

        src_project, src_ds = source[0] or self.project, source[1]
        dst_project, dst_ds = target[0] or self.project, target[1]
        ds = bigquery.Dataset(f"{dst_project}.{dst_ds}")
        if self.location:
            ds.location = self.location
        ds.default_table_expiration_ms = int(self.options.get("ci_table_expiration_hours", 24)) * 3600 * 1000
        ds.labels = {"app": "sqlassets", "sqlassets_ci": "true"}
        self.drop_schema(session, (dst_project, dst_ds))
        self._api(session, f"create dataset {dst_project}.{dst_ds}", lambda: self.client.create_dataset(ds, exists_ok=True))
        tables: list[str] = []
        views: list[str] = []
        for item in self.client.list_tables(f"{src_project}.{src_ds}"):
            src = exp.table_(item.table_id, db=src_ds, catalog=src_project, quoted=True)
            dst = exp.table_(item.table_id, db=dst_ds, catalog=dst_project, quoted=True)
            if item.table_type == "TABLE":
                tables.append(f"CREATE OR REPLACE TABLE {dst.sql(self.dialect)} CLONE {src.sql(self.dialect)}")
            elif item.table_type == "VIEW":
                views.append(item.table_id)
        if tables:
            session.run_atomic(tables)  # type: ignore[attr-defined]
        if views:
            session.run_atomic([self._ci_view(v, (src_project, src_ds), (dst_project, dst_ds))  # type: ignore[attr-defined]
                                for v in views])

    def _ci_view(self, view: str, source: tuple[str, str], target: tuple[str, str]) -> str:
        """A production view in the CI dataset: `CREATE OR REPLACE VIEW ci.v AS SELECT * FROM prod.v`.

        The same rows as re-pointing its query at the clones would give: a view whose upstream changed
        is part of the CI build, which re-creates it from its own SQL over the CI dataset; the others read
        only what the CI build leaves as it is. It needs no view definitions (an INFORMATION_SCHEMA query
        bills at least 10 MB, and the emulator returns definitions without their string literals) and no
        ordering between views that read each other.
        """
        src = exp.table_(view, db=source[1], catalog=source[0], quoted=True)
        dst = exp.table_(view, db=target[1], catalog=target[0], quoted=True)
        return exp.Create(this=dst, kind="VIEW", replace=True,
                          expression=exp.select("*").from_(src)).sql(dialect=self.dialect)

    def checks_connection(self) -> Any:
        """What dbt tests read through: a minimal DB-API connection whose queries are jobs of this thread's
        session, so they carry its labels, `maximum_bytes_billed`, retries and cancel-on-Ctrl-C, and read
        the CI dataset in the gate (the SDK's own dbapi module would send none of that)."""
        from sqlassets.adapters.base import ChecksConnection

        self.open()
        return ChecksConnection(self, _SessionConnection(self))

    def drop_schema(self, session: Session, target: tuple[str | None, str]) -> None:
        """Drop a CI dataset and everything in it."""
        name = f"{target[0] or self.project}.{target[1]}"
        self._api(session, f"delete dataset {name} with its tables",
                  lambda: self.client.delete_dataset(name, delete_contents=True, not_found_ok=True))

    # -- errors and types ----------------------------------------------------------------------------
    def is_transient(self, exc: BaseException) -> bool:
        code = getattr(exc, "code", None)
        if code in (429, 500, 502, 503, 504):
            return True
        for err in getattr(exc, "errors", None) or []:
            if isinstance(err, dict) and err.get("reason") in _TRANSIENT_REASONS:
                return True
        text = str(exc).lower()
        return any(t in text for t in _TRANSIENT_TEXT) and code in (None, 400, 403, 409)

    def normalize_type(self, type_name: str) -> str:
        t = type_name.upper().strip()
        base = t.split("(")[0].strip()
        if base == "NUMERIC":
            return "DECIMAL(38,9)" if t == base else "DECIMAL" + t[len(base):].replace(" ", "")
        if base == "BIGNUMERIC":
            return "DECIMAL(76,38)" if t == base else "DECIMAL" + t[len(base):].replace(" ", "")
        return {"INT64": "BIGINT", "INTEGER": "BIGINT", "INT": "BIGINT", "SMALLINT": "BIGINT", "BIGINT": "BIGINT",
                "TINYINT": "BIGINT", "BYTEINT": "BIGINT", "FLOAT64": "DOUBLE", "FLOAT": "DOUBLE",
                "STRING": "VARCHAR", "BOOL": "BOOLEAN", "BOOLEAN": "BOOLEAN"}.get(t, t)


def partition_expression(partition_by: Any, pdef: PartitionsDef | None, column_types: dict[str, str], *,
                         where: str) -> exp.Expression | None:
    """The PARTITION BY expression, as dbt-bigquery renders `partition_by` (field, data_type, granularity,
    range), or derived from the asset's time partitions when `partition_by` is not set."""
    from sqlassets.run.partitions import TimePartitionsDef

    if partition_by:
        if not isinstance(partition_by, dict) or not partition_by.get("field"):
            raise UserError(f"{where}: partition_by must be a mapping with a 'field'")
        field = exp.column(str(partition_by["field"]), quoted=True)
        data_type = str(partition_by.get("data_type") or "date").lower()
        granularity = str(partition_by.get("granularity") or "day").upper()
        if granularity not in ("HOUR", "DAY", "MONTH", "YEAR"):
            raise UserError(f"{where}: partition_by granularity must be hour, day, month or year")
        if data_type == "int64":
            rng = partition_by.get("range") or {}
            try:
                start, end, interval = (int(rng[k]) for k in ("start", "end", "interval"))
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{where}: an int64 partition_by needs range: {{start, end, interval}}") from None
            return _fn("RANGE_BUCKET", field, _fn("GENERATE_ARRAY", exp.Literal.number(start),
                                                            exp.Literal.number(end), exp.Literal.number(interval)))
        if data_type in ("timestamp", "datetime"):
            if data_type == "timestamp" and granularity == "DAY":
                return _fn("DATE", field)
            fn = "TIMESTAMP_TRUNC" if data_type == "timestamp" else "DATETIME_TRUNC"
            return _fn(fn, field, exp.var(granularity))
        if data_type == "date":
            return field if granularity == "DAY" else _fn("DATE_TRUNC", field, exp.var(granularity))
        raise UserError(f"{where}: partition_by data_type must be date, timestamp, datetime or int64")
    if not isinstance(pdef, TimePartitionsDef) or not pdef.column:
        return None
    col_type = column_types.get(pdef.column.lower(), "").upper()
    unit = _GRAIN_UNIT[pdef.grain]
    field = exp.column(pdef.column, quoted=True)
    if col_type == "DATE":
        return field if unit in ("DAY", "HOUR") else _fn("DATE_TRUNC", field, exp.var(unit))
    if col_type == "DATETIME":
        return _fn("DATETIME_TRUNC", field, exp.var(unit))
    if col_type == "TIMESTAMP":
        return _fn("DATE", field) if unit == "DAY" else _fn("TIMESTAMP_TRUNC", field, exp.var(unit))
    return None  # a type BigQuery cannot partition by (or unknown): an unpartitioned table


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    """A function call rendered exactly as written (sqlglot's typed DATE_TRUNC reorders BigQuery's args)."""
    return exp.Anonymous(this=name, expressions=list(args))


def _schema_field(bigquery: Any, name: str, typ: str) -> Any:
    """A load job's SchemaField for a GoogleSQL type name: `NUMERIC(12, 2)` is NUMERIC with precision 12 and
    scale 2 (the API takes no parameters in the type name)."""
    m = re.match(r"^\s*(BIGNUMERIC|NUMERIC|STRING|BYTES)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*$", typ, re.I)
    if not m:
        return bigquery.SchemaField(name, typ)
    base, first, second = m.group(1).upper(), int(m.group(2)), m.group(3)
    if base in ("STRING", "BYTES"):
        return bigquery.SchemaField(name, base, max_length=first)
    return bigquery.SchemaField(name, base, precision=first, scale=int(second) if second is not None else None)


def _param(bigquery: Any, value: Any) -> Any:
    if isinstance(value, bool):
        typ = "BOOL"
    elif isinstance(value, int):
        typ = "INT64"
    elif isinstance(value, float):
        typ = "FLOAT64"
    elif isinstance(value, datetime):
        typ = "TIMESTAMP" if value.tzinfo else "DATETIME"
    elif isinstance(value, date):
        typ = "DATE"
    else:
        typ = "STRING"
        value = None if value is None else str(value)
    return bigquery.ScalarQueryParameter(None, typ, value)


_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def seed_schema(path: Path, column_types: dict[str, str]) -> list[tuple[str, str]]:
    """(column, BigQuery type) for a seed CSV: `column_types` first, the rest inferred from every value."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise UserError(f"seed {path}: the CSV file is empty (it needs a header row)") from None
        kinds: list[set[str]] = [set() for _ in header]
        for row in reader:
            for i, value in enumerate(row[: len(header)]):
                if value == "":
                    continue
                v = value.strip()
                if v.lower() in ("true", "false"):
                    kinds[i].add("BOOL")
                elif _INT.match(v):
                    kinds[i].add("INT64")
                elif _FLOAT.match(v):
                    kinds[i].add("FLOAT64")
                elif _DATE.match(v):
                    kinds[i].add("DATE")
                elif _DATETIME.match(v):
                    kinds[i].add("DATETIME")
                else:
                    kinds[i].add("STRING")
    lowered = {k.lower(): v for k, v in column_types.items()}
    out = []
    for name, seen in zip(header, kinds, strict=True):
        given = lowered.get(name.lower())
        if given:
            out.append((name, str(exp.DataType.build(given, dialect="bigquery").sql("bigquery"))))
        elif seen <= {"INT64"} and seen:
            out.append((name, "INT64"))
        elif seen and seen <= {"INT64", "FLOAT64"}:
            out.append((name, "FLOAT64"))
        elif len(seen) == 1:
            out.append((name, next(iter(seen))))
        elif seen == {"DATE", "DATETIME"}:
            out.append((name, "DATETIME"))
        else:
            out.append((name, "STRING"))
    return out


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


class _SessionConnection:
    """`cursor()` over the adapter's session, the part of DB-API checks use."""

    def __init__(self, adapter: BigQueryAdapter) -> None:
        self.adapter = adapter

    def cursor(self) -> _SessionCursor:
        return _SessionCursor(self.adapter)

    def close(self) -> None:
        pass


class _SessionCursor:
    """`execute(sql)` runs one query job on this thread's session and returns the cursor (as DuckDB's and
    Snowflake's cursors do), `fetchone`/`fetchall` read its rows."""

    def __init__(self, adapter: BigQueryAdapter) -> None:
        self.adapter = adapter
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _SessionCursor:
        self._rows = list(self.adapter.session().query(sql, params))
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows = []


class BigQueryDryRunSession(DryRunSession):
    """`--dry-run`: prints each unit's statements (as the base does) and the bytes BigQuery says they would
    scan, from a dry-run job per statement (free, nothing runs). A statement on a table the dry run did
    not create yet cannot be estimated; it says so."""

    def __init__(self, adapter: BigQueryAdapter, inner: Session | None, echo: Any) -> None:
        super().__init__(inner, echo, multi_statement=True)
        self.adapter = adapter
        self.bytes_total = 0

    def _estimate(self, statements: Sequence[str]) -> None:
        if self.inner is None:
            return
        try:
            n = self.adapter.dry_run_bytes(self, statements)
        except Exception as exc:  # noqa: BLE001 - an estimate is best effort
            self.echo(f"-- bytes to scan: unknown ({' '.join(str(exc).split())[:160]})")
            return
        self.bytes_total += n
        self.echo(f"-- would scan {human_bytes(n)} ({n} bytes)")

    def execute(self, sql: str) -> int | None:
        super().execute(sql)
        self._estimate([sql])
        return None

    def run_atomic(self, statements: Sequence[str]) -> int | None:
        super().run_atomic(statements)
        self._estimate(statements)
        return None
