"""Generate a deterministic synthetic dbt project on DuckDB, and its manifest via a real `dbt parse`.

Why: the speed targets of issue 2 (and the lineage benchmark of issue 4) are stated for a
5,000-model project shaped like real work: sources -> staging views -> joins / aggregates / windows /
CTEs / UNION ALL -> marts. The SQL is valid DuckDB SQL and every model's output columns are tracked
while generating, so a downstream model only selects columns its parents really have (lineage needs
that). Each model's output always carries `customer_id`, `amount` and `created_at`, which keeps joins,
aggregates and windows composable.

    python bench/gen_project.py --models 5000 --out bench/_work/p5000 [--compile]

Re-runs are instant: the result is cached in the output folder under a key of the parameters and
GENERATOR_VERSION; `dbt parse` runs only when the key changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
PROJECT_NAME = "synth"
KEY_FILE = ".gen_key"
# Part of the cache key: bump it whenever a change here changes the generated files.
GENERATOR_VERSION = 1

DOMAINS = ["crm", "erp", "billing", "web", "mobile", "support", "marketing", "inventory", "shipping", "hr"]
GROUPS = {
    "finance": "finance-data@example.com",
    "growth": "growth-analytics@example.com",
    "product": "product-analytics@example.com",
    "operations": "ops-data@example.com",
}
OWNERS = ["alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com"]
EXTRA_COLUMNS = [
    ("status", "varchar"), ("channel", "varchar"), ("country", "varchar"), ("currency", "varchar"),
    ("quantity", "integer"), ("discount", "double"), ("is_deleted", "boolean"), ("score", "double"),
    ("plan", "varchar"), ("region", "varchar"), ("device", "varchar"), ("priority", "integer"),
]
STATUSES = ["active", "pending", "closed", "refunded"]


@dataclass
class Model:
    """One generated model: its name, folder, output columns and SQL."""

    name: str
    folder: str
    columns: list[tuple[str, str]]  # (name, duckdb type) of the SELECT output
    sql: str
    layer: str
    parents: list[str] = field(default_factory=list)
    materialized: str | None = None
    tags: list[str] = field(default_factory=list)
    group: str | None = None
    owner: str | None = None
    documented: bool = False


def _col_names(cols: list[tuple[str, str]]) -> list[str]:
    return [c for c, _ in cols]


def _plan_sizes(n_models: int) -> tuple[int, int, int]:
    """(sources, intermediate, marts): 250 sources and 250 staging models at 5,000 models."""
    n_sources = max(2, min(250, round(n_models / 20)))
    if n_models < n_sources + 2:
        raise ValueError(f"need at least {n_sources + 2} models")
    n_marts = max(1, n_models // 10)
    n_int = n_models - n_sources - n_marts
    return n_sources, n_int, n_marts


def _sources(rng: random.Random, n_sources: int) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    """source name -> [(table, columns)]; columns include id, customer_id, amount, created_at."""
    out: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
    for i in range(n_sources):
        src = f"raw_{DOMAINS[i % len(DOMAINS)]}"
        table = f"{DOMAINS[(i * 7) % len(DOMAINS)]}_table_{i:03d}"
        extra = rng.sample(EXTRA_COLUMNS, rng.randint(2, 6))
        cols = [("id", "bigint"), ("customer_id", "bigint"), ("amount", "decimal(18,2)"),
                ("created_at", "timestamp"), *extra, ("_loaded_at", "timestamp")]
        out.setdefault(src, []).append((table, cols))
    return out


def _staging(src: str, table: str, cols: list[tuple[str, str]]) -> Model:
    name = f"stg_{src.removeprefix('raw_')}__{table}"
    select = [f"id as {table}_id", "cast(customer_id as bigint) as customer_id",
              "cast(amount as decimal(18, 2)) as amount", "created_at"]
    out = [(f"{table}_id", "bigint"), ("customer_id", "bigint"), ("amount", "decimal(18,2)"),
           ("created_at", "timestamp")]
    for c, t in cols[4:-1]:
        if c == "status":
            select.append("case when status in ('active', 'pending') then 'open' else coalesce(status, 'unknown') "
                          "end as status")
        elif t == "varchar":
            select.append(f"lower(trim({c})) as {c}")
        else:
            select.append(c)
        out.append((c, t))
    select.append("date_trunc('day', created_at) as created_date")
    out.append(("created_date", "timestamp"))
    body = ",\n        ".join(select)
    sql = (
        f"with source as (\n    select * from {{{{ source('{src}', '{table}') }}}}\n),\n\n"
        f"renamed as (\n    select\n        {body}\n    from source\n    where _loaded_at is not null\n)\n\n"
        "select * from renamed\n"
    )
    return Model(name, f"staging/{src.removeprefix('raw_')}", out, sql, "staging", materialized="view",
                 tags=["staging"])


def _join(rng: random.Random, a: Model, b: Model) -> tuple[str, list[tuple[str, str]]]:
    """`select a.*, b.x` when a is narrow enough (keeps widths bounded), explicit columns otherwise."""
    b_extra = [c for c in b.columns if c[0] not in ("customer_id", "amount", "created_at")]
    picked = rng.sample(b_extra, min(len(b_extra), rng.randint(1, 3))) if b_extra else []
    a_names = set(_col_names(a.columns))
    picked_out = []
    for c, t in picked:
        out_name = c
        while out_name in a_names:
            out_name = f"b_{out_name}"
        a_names.add(out_name)
        picked_out.append((out_name, t))
    b_sel = ", ".join(f"b.{c} as {n}" for (c, _), (n, _) in zip(picked, picked_out, strict=True))
    if len(a.columns) <= 24 and rng.random() < 0.6:
        a_sel, a_out = "a.*", list(a.columns)
    else:
        keep = ["customer_id", "amount", "created_at"]
        others = [c for c in a.columns if c[0] not in keep]
        extra = rng.sample(others, min(len(others), rng.randint(0, 4)))
        a_out = [c for c in a.columns if c[0] in keep] + extra
        a_sel = ", ".join(f"a.{c}" for c, _ in a_out)
    sel = a_sel + (", " + b_sel if b_sel else "")
    kind = rng.choice(["left join", "left join", "inner join"])
    sql = (
        f"select {sel}\nfrom {{{{ ref('{a.name}') }}}} as a\n"
        f"{kind} {{{{ ref('{b.name}') }}}} as b\n    on a.customer_id = b.customer_id\n"
    )
    return sql, a_out + picked_out


def _aggregate(rng: random.Random, a: Model) -> tuple[str, list[tuple[str, str]]]:
    dims = [c for c in a.columns if c[1] == "varchar"][:2]
    group = ["customer_id", *(_col_names(dims))]
    nums = [c for c in a.columns if c[1] in ("integer", "double") and c[0] not in group][:2]
    sel = [*group, "sum(amount) as amount", "count(*) as n_rows", "max(created_at) as created_at",
           "min(created_at) as first_created_at",
           "sum(case when amount > 100 then 1 else 0 end) as n_large"]
    out = [*[c for c in a.columns if c[0] in group], ("amount", "decimal(38,2)"), ("n_rows", "bigint"),
           ("created_at", "timestamp"), ("first_created_at", "timestamp"), ("n_large", "hugeint")]
    for c, _t in nums:
        sel.append(f"avg({c}) as avg_{c}")
        out.append((f"avg_{c}", "double"))
    sql = (
        "select\n    " + ",\n    ".join(sel) + f"\nfrom {{{{ ref('{a.name}') }}}}\n"
        f"group by {', '.join(str(i + 1) for i in range(len(group)))}\n"
    )
    # keep ordering of output columns as in SQL
    by_name = dict(out)
    ordered = [(n, by_name[n]) for n in [*group, "amount", "n_rows", "created_at", "first_created_at",
                                         "n_large", *[f"avg_{c}" for c, _ in nums]]]
    _ = rng
    return sql, ordered


def _window(rng: random.Random, a: Model) -> tuple[str, list[tuple[str, str]]]:
    others = [c for c in a.columns if c[0] not in ("customer_id", "amount", "created_at")]
    keep = rng.sample(others, min(len(others), rng.randint(0, 3)))
    base = [("customer_id", "bigint"), ("amount", dict(a.columns)["amount"]), ("created_at", "timestamp"),
            *keep]
    sel = _col_names(base) + [
        "row_number() over (partition by customer_id order by created_at) as event_seq",
        "sum(amount) over (partition by customer_id order by created_at "
        "rows between unbounded preceding and current row) as running_amount",
        "lag(created_at) over (partition by customer_id order by created_at) as previous_created_at",
    ]
    out = [*base, ("event_seq", "bigint"), ("running_amount", "decimal(38,2)"),
           ("previous_created_at", "timestamp")]
    sql = (
        "with ordered as (\n    select\n        " + ",\n        ".join(sel)
        + f"\n    from {{{{ ref('{a.name}') }}}}\n)\n\n"
        "select *, case when event_seq = 1 then true else false end as is_first\nfrom ordered\n"
    )
    out.append(("is_first", "boolean"))
    return sql, out


def _union(parents: list[Model]) -> tuple[str, list[tuple[str, str]]]:
    ctes = []
    for i, p in enumerate(parents):
        ctes.append(
            f"part_{i} as (\n    select customer_id, cast(amount as decimal(18, 2)) as amount, created_at, "
            f"'{p.name}' as origin\n    from {{{{ ref('{p.name}') }}}}\n)"
        )
    unions = "\nunion all\n".join(f"select * from part_{i}" for i in range(len(parents)))
    sql = "with " + ",\n".join(ctes) + f",\n\nunioned as (\n{unions}\n)\n\n" + (
        "select customer_id, amount, created_at, origin,\n"
        "    case when amount < 0 then 'refund' when amount = 0 then 'free' else 'paid' end as amount_band\n"
        "from unioned\n"
    )
    out = [("customer_id", "bigint"), ("amount", "decimal(18,2)"), ("created_at", "timestamp"),
           ("origin", "varchar"), ("amount_band", "varchar")]
    return sql, out


def _incremental_wrap(sql: str) -> str:
    """Turn a model into a realistic incremental one with an `is_incremental()` filter."""
    return (
        "{{ config(materialized='incremental', unique_key='customer_id') }}\n\n"
        f"with base as (\n{sql.rstrip()}\n)\n\nselect * from base\n"
        "{% if is_incremental() %}\nwhere created_at > (select max(created_at) from {{ this }})\n{% endif %}\n"
    )


def build_models(n_models: int, seed: int) -> tuple[dict, list[Model]]:
    """All sources and models, deterministic for (n_models, seed)."""
    rng = random.Random(seed)
    n_sources, n_int, n_marts = _plan_sizes(n_models)
    sources = _sources(rng, n_sources)
    models: list[Model] = []
    for src, tables in sources.items():
        for table, cols in tables:
            models.append(_staging(src, table, cols))
    staging = list(models)
    upstream: list[Model] = list(staging)
    for i in range(n_int):
        domain = DOMAINS[i % len(DOMAINS)]
        # Mostly recent parents, so the graph gets depth; sometimes any staging model.
        def pick() -> Model:
            if rng.random() < 0.3 or len(upstream) == len(staging):
                return rng.choice(staging)
            window = upstream[max(len(staging), len(upstream) - 400):]
            return rng.choice(window)

        shape = rng.choices(["join", "aggregate", "window", "union"], weights=[4, 3, 2, 1])[0]
        if shape == "join":
            a, b = pick(), pick()
            while b is a:
                b = rng.choice(staging)
            sql, cols = _join(rng, a, b)
            parents = [a.name, b.name]
        elif shape == "aggregate":
            a = pick()
            sql, cols = _aggregate(rng, a)
            parents = [a.name]
        elif shape == "window":
            a = pick()
            sql, cols = _window(rng, a)
            parents = [a.name]
        else:
            ps = []
            for _ in range(rng.randint(2, 3)):
                p = pick()
                if p not in ps:
                    ps.append(p)
            sql, cols = _union(ps)
            parents = [p.name for p in ps]
        name = f"int_{domain}_{shape}_{i:05d}"
        mat = rng.choices(["view", "table", "incremental", "ephemeral"], weights=[6, 3, 1, 0.3])[0]
        if mat == "incremental":
            sql = _incremental_wrap(sql)
        m = Model(name, f"intermediate/{domain}", cols, sql, "intermediate", parents,
                  materialized=None if mat in ("incremental", "view") else mat,
                  tags=[domain] + (["daily"] if rng.random() < 0.2 else []),
                  documented=rng.random() < 0.3 and mat != "ephemeral",
                  owner=rng.choice(OWNERS) if rng.random() < 0.3 else None)
        models.append(m)
        upstream.append(m)
    ints = [m for m in models if m.layer == "intermediate" and m.materialized != "ephemeral"]
    group_names = list(GROUPS)
    for i in range(n_marts):
        group = group_names[i % len(group_names)]
        k = rng.randint(2, 4)
        ps: list[Model] = []
        for _ in range(k):
            p = rng.choice(ints[-1500:]) if ints else rng.choice(staging)
            if p not in ps:
                ps.append(p)
        base, rest = ps[0], ps[1:]
        ctes = [f"base as (\n    select * from {{{{ ref('{base.name}') }}}}\n)"]
        joins = []
        cols = [c for c in base.columns]
        for j, p in enumerate(rest):
            ctes.append(
                f"agg_{j} as (\n    select customer_id, sum(amount) as amount_{j}, count(*) as n_{j}\n"
                f"    from {{{{ ref('{p.name}') }}}}\n    group by customer_id\n)"
            )
            joins.append(f"left join agg_{j} using (customer_id)")
            cols += [(f"amount_{j}", "decimal(38,2)"), (f"n_{j}", "bigint")]
        total = " + ".join(["coalesce(base.amount, 0)"] + [f"coalesce(amount_{j}, 0)" for j in range(len(rest))])
        sql = (
            "with " + ",\n".join(ctes) + "\n\nselect\n    base.*,\n    "
            + ",\n    ".join([f"agg_{j}.amount_{j}, agg_{j}.n_{j}" for j in range(len(rest))] + [
                f"{total} as lifetime_amount"])
            + "\nfrom base\n" + "\n".join(joins) + "\n"
        )
        cols.append(("lifetime_amount", "decimal(38,2)"))
        prefix = "fct" if i % 3 else "dim"
        name = f"{prefix}_{group}_{i:04d}"
        models.append(Model(name, f"marts/{group}", cols, sql, "mart", [p.name for p in ps],
                            materialized="table", tags=["mart", group], group=group,
                            documented=rng.random() < 0.7, owner=GROUPS[group]))
    assert len(models) == n_models, (len(models), n_models)
    return sources, models


def _yaml(obj: object) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=200)


def write_project(root: Path, n_models: int, seed: int) -> None:
    """Write dbt_project.yml, profiles.yml, sources, models and schema YAML under `root`."""
    sources, models = build_models(n_models, seed)
    if root.exists():
        # Only ever wipe a folder this script made (or an empty one): --out could point anywhere.
        if not (root / KEY_FILE).exists() and any(root.iterdir()):
            raise SystemExit(f"{root} exists and was not made by gen_project.py; choose another --out")
        shutil.rmtree(root)
    (root / "models").mkdir(parents=True)
    (root / KEY_FILE).write_text("incomplete")  # replaced by the cache key once dbt has parsed
    (root / "dbt_project.yml").write_text(_yaml({
        "name": PROJECT_NAME,
        "version": "1.0.0",
        "config-version": 2,
        "profile": PROJECT_NAME,
        "model-paths": ["models"],
        "models": {PROJECT_NAME: {
            "staging": {"+materialized": "view", "+tags": ["staging"]},
            "intermediate": {"+materialized": "view"},
            "marts": {"+materialized": "table", "+tags": ["mart"]},
        }},
    }))
    (root / "profiles.yml").write_text(_yaml({PROJECT_NAME: {"target": "dev", "outputs": {
        "dev": {"type": "duckdb", "path": "synth.duckdb", "schema": "main", "threads": 1}}}}))
    (root / "models" / "groups.yml").write_text(_yaml({"groups": [
        {"name": g, "owner": {"email": e}} for g, e in GROUPS.items()]}))
    src_dir = root / "models" / "staging"
    src_dir.mkdir(parents=True)
    (src_dir / "_sources.yml").write_text(_yaml({"version": 2, "sources": [
        {"name": src, "schema": src, "description": f"Raw {src.removeprefix('raw_')} tables, loaded hourly.",
         "meta": {"owner": "platform@example.com"},
         "tables": [{"name": t, "description": f"Raw {t} rows.",
                     "columns": [{"name": c, "data_type": ty, "description": f"{c} of {t}"} for c, ty in cols]}
                    for t, cols in tables]}
        for src, tables in sources.items()]}))
    by_folder: dict[str, list[Model]] = {}
    for m in models:
        d = root / "models" / m.folder
        d.mkdir(parents=True, exist_ok=True)
        head = []
        cfg = []
        if m.materialized and m.layer == "intermediate":
            cfg.append(f"materialized='{m.materialized}'")
        if m.layer == "intermediate" and m.tags:
            cfg.append(f"tags={m.tags!r}")
        if cfg:
            head.append("{{ config(" + ", ".join(cfg) + ") }}\n\n")
        (d / f"{m.name}.sql").write_text("".join(head) + m.sql)
        by_folder.setdefault(m.folder, []).append(m)
    for folder, ms in by_folder.items():
        entries = []
        for m in ms:
            if not (m.documented or m.group):
                continue
            e: dict = {"name": m.name, "description": f"{m.layer.title()} model {m.name}."}
            config: dict = {}
            if m.group:
                config["group"] = m.group
            if m.owner:
                config["meta"] = {"owner": m.owner}
            if config:
                e["config"] = config
            if m.documented:
                e["columns"] = [{"name": c, "data_type": t, "description": f"{c.replace('_', ' ')}"}
                                for c, t in m.columns]
            entries.append(e)
        if entries:
            (root / "models" / folder / "_schema.yml").write_text(_yaml({"version": 2, "models": entries}))


def _dbt(root: Path, *args: str) -> None:
    """Run the dbt CLI of this interpreter's venv in a subprocess (keeps dbt's globals out of callers)."""
    exe = Path(sys.executable).parent / "dbt"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]
    cmd += [*args, "--project-dir", str(root), "--profiles-dir", str(root), "--quiet"]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed in {root}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def cache_key(n_models: int, seed: int, compile: bool) -> str:
    """Parameters + GENERATOR_VERSION: bump the version whenever the generated project changes."""
    return hashlib.sha256(json.dumps([GENERATOR_VERSION, n_models, seed, compile]).encode()).hexdigest()[:16]


def generate(root: Path, n_models: int = 5000, seed: int = 0, *, compile: bool = False,
             verbose: bool = False) -> Path:
    """Write the project under `root` and run `dbt parse` (and `dbt compile` if asked); return the manifest.

    Cached: when `root/.gen_key` matches the parameters and GENERATOR_VERSION, nothing is redone.
    `compile=True` fills `compiled_code` in the manifest; dbt-duckdb compiles without the source
    tables existing (it only opens an empty DuckDB file under root).
    """
    root = Path(root).resolve()
    key = cache_key(n_models, seed, compile)
    manifest = root / "target" / "manifest.json"
    if (root / KEY_FILE).exists() and (root / KEY_FILE).read_text() == key and manifest.exists():
        return manifest
    t0 = time.perf_counter()
    write_project(root, n_models, seed)
    t1 = time.perf_counter()
    _dbt(root, "compile" if compile else "parse")
    t2 = time.perf_counter()
    for leftover in ("logs", "synth.duckdb", "synth.duckdb.wal"):
        p = root / leftover
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    (root / KEY_FILE).write_text(key)
    # The manifest must stay newer than every project file, as after a fresh `dbt parse`.
    now = time.time()
    os.utime(manifest, (now, now))
    if verbose:
        size = manifest.stat().st_size / 1e6
        print(f"wrote {n_models} models in {t1 - t0:.1f}s; dbt {'compile' if compile else 'parse'} "
              f"{t2 - t1:.1f}s; manifest {size:.1f} MB at {manifest}")
    return manifest


def cached_project(n_models: int = 5000, seed: int = 0, *, compile: bool = False, verbose: bool = False) -> Path:
    """The project under bench/_work/p<n>[...] (generated once); returns its root."""
    name = f"p{n_models}" + (f"-s{seed}" if seed else "") + ("-compiled" if compile else "")
    root = WORK / name
    generate(root, n_models, seed, compile=compile, verbose=verbose)
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="default: bench/_work/p<models>")
    ap.add_argument("--compile", action="store_true", help="run `dbt compile` so compiled_code is in the manifest")
    args = ap.parse_args(argv)
    if args.out is None:
        root = cached_project(args.models, args.seed, compile=args.compile, verbose=True)
    else:
        root = args.out
        generate(root, args.models, args.seed, compile=args.compile, verbose=True)
    print(root / "target" / "manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
