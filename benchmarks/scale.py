"""A registry-sized cohort on DuckDB over Parquet (and on Spark), against hand-written SQL.

Writes a synthetic registry of ``--patients`` patients (default 5,000,000, about 53
million assessment rows) as Parquet, one folder of chunk files per table
(:func:`analysis.synthetic_cohort` per chunk, patient ids made distinct by a chunk
prefix), then runs the monthly pipeline of a registry analyst in two fresh processes on
the same files:

- ``library``: ``load_cohort(folder, engine="duckdb", memory_limit=...)`` (validation and
  the de-identification guard in DuckDB), ``derive_endpoints(cohort, "GAD7")`` written to
  Parquet, ``rate_table`` of week-4 response and remission by site (Wilson intervals) and
  the within-patient ``effect_size_table``;
- ``sql``: the same computation as hand-written DuckDB SQL on a connection with the
  library's DuckDB settings for the budget (``--memory-limit`` is the budget of the whole
  process, as for ``load_cohort``: both give DuckDB's buffers the same share of it, so
  that the ratio compares like with like): one query per table for the column rules, the
  keys, the instrument rules, the findings and the identifier-shaped values; the
  derivation of ``benchmarks/derive.py`` (baseline window, closest in window with ties to
  the earlier day, prorating, the flags); the rates with Wilson intervals and the d_av
  effect sizes with their normal-approximation intervals, after the check that no
  patient repeats within a cell (which the library makes before an effect size).

Each step prints its time, the ratio library / SQL, the peak resident set size of the
process during the step (the whole process: Python, Arrow and DuckDB; in MiB, 2**20
bytes, and at the end as a share of the budget) and the ratio of CPU seconds (every
thread), which other work on a shared machine disturbs less than the wall time; the load
average before and after the runs is printed with them. Before timing, the
SQL is checked to give the library's results on a small registry with injected errors
(validation counts, endpoint rows, rates and effect sizes). ``--spark-patients`` (default
500,000) then times the library on local Spark (a subset of the same files); Spark's
memory is the JVM's and is not measured here.

Usage::

    nice python benchmarks/scale.py                         # 5,000,000 patients
    python benchmarks/scale.py --patients 2000 --spark-patients 0   # a smoke run
    python benchmarks/scale.py --data /big/disk/registry --keep      # keep the files
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from derive import _PeakRSS, reference_sql  # noqa: E402  (the benchmarks' shared helpers)

from analysis.instruments import GAD7, INSTRUMENTS  # noqa: E402

TABLES = ("patients", "assessments", "sessions", "adverse_events")
STEPS = ("validate", "derive", "rates", "effect_sizes")
Z95 = 1.959963984540054  # the 97.5% normal quantile


# --------------------------------------------------------------------------- data


def write_registry(folder: Path, n_patients: int, chunk: int = 250_000, seed: int = 0) -> dict:
    """Write ``n_patients`` synthetic patients as ``folder/<table>/part-<k>.parquet``."""
    from analysis import synthetic_cohort

    rows = dict.fromkeys(TABLES, 0)
    for k, start in enumerate(range(0, n_patients, chunk)):
        cohort = synthetic_cohort(min(chunk, n_patients - start), seed=seed + k)
        prefix = f"P{k:04d}"  # P000001 of chunk 3 is P0003000001: distinct across chunks
        for table in TABLES:
            df = getattr(cohort, table)
            df = df.assign(patient_id=prefix + df["patient_id"].str.slice(1))
            (folder / table).mkdir(parents=True, exist_ok=True)
            df.to_parquet(folder / table / f"part-{k:05d}.parquet", index=False)
            rows[table] += len(df)
    return rows


def _inject_errors(folder: Path) -> None:
    """A few errors and identifiers in the first chunk (for the equality check)."""
    p = pd.read_parquet(folder / "patients" / "part-00000.parquet")
    p.loc[p.index[:3], "age"] = 17
    p.loc[p.index[3], "route"] = "IV"
    p.to_parquet(folder / "patients" / "part-00000.parquet", index=False)
    a = pd.read_parquet(folder / "assessments" / "part-00000.parquet")
    gad = np.flatnonzero((a["instrument"] == "GAD7").to_numpy())
    a.loc[a.index[gad[:2]], "item_3"] = 4
    a.loc[a.index[gad[2:4]], "item_9"] = 1
    a.loc[a.index[gad[4:6]], "total"] = 0
    a.loc[a.index[gad[6]], "patient_id"] = "P9999999999"
    a.to_parquet(folder / "assessments" / "part-00000.parquet", index=False)
    for part in sorted((folder / "assessments").glob("*.parquet")):  # every chunk: one schema
        a = pd.read_parquet(part)
        a["memo"] = np.where(np.arange(len(a)) % 50 == 0, "call +1 555 010 0199", "ok")
        a.to_parquet(part, index=False)


# --------------------------------------------------------------------------- the SQL


def _scan(folder: Path, table: str) -> str:
    return f"read_parquet('{folder / table}/*.parquet')"


def _rule_sql(field: dict) -> list[tuple[str, str]]:
    """``(check, failing condition)`` of a column's Table Schema constraints."""
    c, k = f'"{field["name"]}"', field.get("constraints", {})
    out = []
    if k.get("required"):
        out.append(("not_null", f"{c} IS NULL"))
    if "minimum" in k and "maximum" in k:
        out.append(
            (
                f"in_range {k['minimum']}-{k['maximum']}",
                f"{c} < {k['minimum']} OR {c} > {k['maximum']}",
            )
        )
    elif "minimum" in k:
        out.append((f"minimum {k['minimum']}", f"{c} < {k['minimum']}"))
    elif "maximum" in k:
        out.append((f"maximum {k['maximum']}", f"{c} > {k['maximum']}"))
    if "exclusiveMinimum" in k:
        out.append(
            (f"exclusive_minimum {k['exclusiveMinimum']}", f"{c} <= {k['exclusiveMinimum']}")
        )
    if "enum" in k:
        codes = ", ".join(f"'{v}'" for v in k["enum"])
        out.append(("one_of " + ", ".join(k["enum"]), f"{c} NOT IN ({codes})"))
    if "pattern" in k:
        out.append((f"pattern {k['pattern']}", f"NOT regexp_full_match({c}, '{k['pattern']}')"))
    return out


def reference_validation(con, folder: Path) -> dict:
    """Validation of typed Parquet tables in hand-written SQL: ``{(table, column, check,
    severity): rows}``, the counts of the library's report."""
    from analysis import deid
    from analysis._engine_validation import _guard_patterns
    from analysis.endpoints import DEFAULT_SCHEDULE
    from analysis.schema import read_schema

    out: dict = {}

    def add(table, column, check, n, severity="error"):
        if n:
            out[(table, column, check, severity)] = int(n)

    present = [t for t in TABLES if (folder / t).is_dir()]
    for t in present:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {t} AS SELECT * FROM {_scan(folder, t)}")
    columns = {t: con.sql(f"SELECT * FROM {t} LIMIT 0").columns for t in present}
    for t in present:
        schema = read_schema(t)
        rules = [
            (f["name"], check, cond)
            for f in schema["fields"]
            if f["name"] in columns[t]
            for check, cond in _rule_sql(f)
        ]
        selects = ", ".join(f"count(*) FILTER (WHERE {cond})" for _, _, cond in rules)
        counts = con.sql(f"SELECT {selects} FROM {t}").fetchall()[0]
        for (column, check, _), n in zip(rules, counts, strict=True):
            add(t, column, check, n)
        for key in [schema.get("primaryKey")] if schema.get("primaryKey") else []:
            cols = ", ".join(key)
            n = con.sql(
                f"SELECT sum(n) FROM (SELECT count(*) AS n FROM {t} GROUP BY {cols} "
                "HAVING count(*) > 1)"
            ).fetchall()[0][0]
            add(t, ", ".join(key), "unique " + "+".join(key), n)
        if t != "patients":
            n = con.sql(
                f"SELECT count(*) FROM {t} WHERE patient_id IS NOT NULL AND "
                "regexp_full_match(patient_id, '[A-Za-z0-9_-]{1,64}') AND patient_id NOT IN "
                "(SELECT patient_id FROM patients WHERE patient_id IS NOT NULL)"
            ).fetchall()[0][0]
            add(t, "patient_id", "foreign_key patients.patient_id", n)
    # instrument rules (on values that passed the schema's ranges)
    selects, names = [], []
    for i in INSTRUMENTS.values():
        rows = f"instrument = '{i.name}'"
        over = [f"({rows} AND {c} > {i.item_max} AND {c} <= 4)" for c in i.item_columns]
        filled = [f"({rows} AND {c} IS NOT NULL)" for c in i.unused_item_columns]
        total_over = f"({rows} AND total > {i.total_max} AND total <= 56)"
        for c, cond in zip(i.item_columns, over, strict=True):
            selects.append(f"count(*) FILTER (WHERE {cond})")
            names.append((c, f"in_range {i.item_min}-{i.item_max} for {i.name}", "error"))
        for c, cond in zip(i.unused_item_columns, filled, strict=True):
            selects.append(f"count(*) FILTER (WHERE {cond})")
            names.append((c, f"empty for {i.name}", "error"))
        selects.append(f"count(*) FILTER (WHERE {total_over})")
        names.append(("total", f"in_range 0-{i.total_max} for {i.name}", "error"))
        in_range = " AND ".join(
            f"({c} IS NULL OR {c} BETWEEN {i.item_min} AND {i.item_max})" for c in i.item_columns
        )
        ok = (
            f"{rows} AND {in_range} AND (total IS NULL OR total BETWEEN 0 AND {i.total_max})"
            + "".join(f" AND {c} IS NULL" for c in i.unused_item_columns)
        )
        answered = " + ".join(f"({c} IS NOT NULL)::INT" for c in i.item_columns)
        summed = " + ".join(f"coalesce({c}, 0)" for c in i.item_columns)
        needed = i.n_items - i.max_missing_items
        selects.append(
            f"count(*) FILTER (WHERE {ok} AND {answered} = {i.n_items} AND total IS NOT NULL "
            f"AND total <> {summed})"
        )
        names.append(("total", f"total_matches_items for {i.name}", "error"))
        selects.append(f"count(*) FILTER (WHERE {ok} AND total IS NULL AND {answered} < {needed})")
        names.append(
            (
                "total",
                f"unscorable for {i.name}: no total and fewer than {needed} of {i.n_items} items",
                "finding",
            )
        )
    scorable = " OR ".join(
        f"(instrument = '{i.name}' AND (total IS NOT NULL OR "
        + " + ".join(f"({c} IS NOT NULL)::INT" for c in i.item_columns)
        + f" >= {i.n_items - i.max_missing_items}))"
        for i in INSTRUMENTS.values()
    )
    per_patient = []
    for i in INSTRUMENTS.values():
        visits = [v for v in DEFAULT_SCHEDULE if i.name in v.instruments]
        base = f"study_day BETWEEN {visits[0].window_low} AND {visits[0].window_high}"
        post = " OR ".join(
            f"study_day BETWEEN {v.window_low} AND {v.window_high}" for v in visits[1:]
        )
        rows = f"instrument = '{i.name}' AND study_day IS NOT NULL"
        selects.append(f"count(*) FILTER (WHERE {rows} AND NOT ({base}) AND NOT ({post}))")
        names.append(("study_day", f"outside_schedule for {i.name}", "finding"))
        per_patient += [
            f"bool_or({rows}) AS every_{i.name}",
            f"bool_or({rows} AND ({scorable}) AND ({base})) AS base_{i.name}",
            f"bool_or({rows} AND ({scorable}) AND ({post})) AS post_{i.name}",
        ]
    counts = con.sql(f"SELECT {', '.join(selects)} FROM assessments").fetchall()[0]
    for (column, check, severity), n in zip(names, counts, strict=True):
        add("assessments", column, check, n, severity)
    patients_sql = f"""
        WITH a AS (SELECT patient_id, {", ".join(per_patient)}, max(study_day) AS last_day
                   FROM assessments WHERE patient_id IS NOT NULL GROUP BY patient_id)
        SELECT {
        ", ".join(
            f"count(*) FILTER (WHERE every_{n} AND NOT base_{n}), "
            f"count(*) FILTER (WHERE base_{n} AND NOT post_{n})"
            for n in INSTRUMENTS
        )
    }, count(*) FILTER (WHERE a.patient_id IS NULL)
        FROM (SELECT DISTINCT patient_id FROM patients WHERE patient_id IS NOT NULL) p
        LEFT JOIN a USING (patient_id)
    """
    counts = con.sql(patients_sql).fetchall()[0]
    checks = [f"{k} for {n}" for n in INSTRUMENTS for k in ("no_baseline", "no_post_baseline")]
    for check, n in zip([*checks, "no_assessments"], counts, strict=True):
        add("patients", "patient_id", check, n, "finding")
    for t in ("sessions", "adverse_events"):
        if t not in present:
            continue
        n = con.sql(
            f"SELECT count(*) FROM {t} JOIN (SELECT patient_id, max(study_day) AS last_day "
            f"FROM assessments GROUP BY patient_id) USING (patient_id) WHERE study_day > last_day"
        ).fetchall()[0][0]
        add(t, "study_day", "after_last_assessment", n, "finding")
    if "sessions" in present:
        n = con.sql(
            "SELECT count(*) FROM sessions WHERE session_number = 1 AND study_day <> 0"
        ).fetchall()[0][0]
        add("sessions", "study_day", "session_1_on_day_0", n)
    if "adverse_events" in present:
        cols = ", ".join(f'"{c}"' for c in columns["adverse_events"])
        n = con.sql(
            f"SELECT sum(n) FROM (SELECT count(*) AS n FROM adverse_events GROUP BY {cols} "
            "HAVING count(*) > 1)"
        ).fetchall()[0][0]
        add("adverse_events", "(row)", "duplicate_row: every column repeated", n)
    # columns outside the schema, then the de-identification guard: names, then values
    for t in present:
        import difflib

        from analysis.readers import normalise_name

        fields = [f["name"] for f in read_schema(t)["fields"]]
        absent = [f for f in fields if f not in columns[t]]
        for column in columns[t]:
            if column in fields:
                continue
            close = difflib.get_close_matches(normalise_name(column), absent, n=1, cutoff=0.6)
            check = f"did you mean `{close[0]}`?" if close else "kept as an extra column"
            n = con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            add(t, column, "unknown_column: " + check, n, "finding")
        kinds = dict(con.sql(f"DESCRIBE {t}").fetchall()[k][:2] for k in range(len(columns[t])))
        for column in columns[t]:
            if deid.is_identifier_column(column):
                add(
                    t,
                    column,
                    "identifier_name",
                    con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0],
                )
        text = [c for c in columns[t] if kinds[c] == "VARCHAR"]
        if not text:
            continue
        filters = {c: _guard_patterns(c) for c in text}
        quoted = {c: filters[c][0].replace("'", "''") for c in text}
        hits = con.sql(
            "SELECT "
            + ", ".join(
                f"count(*) FILTER (WHERE regexp_matches(trim(\"{c}\"), '{quoted[c]}'))"
                for c in text
            )
            + f" FROM {t}"
        ).fetchall()[0]
        for c, n in zip(text, hits, strict=True):
            if not n:
                continue
            pattern = quoted[c]
            candidates = con.sql(
                f'SELECT trim("{c}") AS v, count(*) AS n FROM {t} '
                f"WHERE regexp_matches(trim(\"{c}\"), '{pattern}') GROUP BY ALL"
            ).fetchall()
            for check, test in filters[c][1]:
                add(t, c, check, sum(m for v, m in candidates if test(v)))
    return out


def reference_rates(con, endpoints: str, outcome: str) -> str:
    """Week-4 ``outcome`` by site with Wilson intervals, in SQL."""
    return f"""
    WITH cells AS (
        SELECT p.site_id, count(e.{outcome}) AS n, sum(e.{outcome}::INT) AS events
        FROM read_parquet('{endpoints}') e LEFT JOIN patients p USING (patient_id)
        WHERE e.visit = 'week4' GROUP BY p.site_id
    ), r AS (SELECT *, events / n AS p, {Z95}^2 / n AS z2n FROM cells)
    SELECT site_id, n, events, p AS rate,
           (p + z2n / 2 - {Z95} * sqrt(p * (1 - p) / n + z2n / (4 * n))) / (1 + z2n) AS ci_low,
           (p + z2n / 2 + {Z95} * sqrt(p * (1 - p) / n + z2n / (4 * n))) / (1 + z2n) AS ci_high
    FROM r ORDER BY site_id
    """


def reference_effect_sizes(endpoints: str) -> str:
    """The within-patient d_av per instrument and visit with its normal interval, in SQL."""
    return f"""
    WITH m AS (
        SELECT instrument, visit, min(target_day) AS target_day, count(*) AS n,
               avg(baseline) AS mb, avg(score) AS ms, stddev_samp(baseline) AS sb,
               stddev_samp(score) AS ss, stddev_samp(baseline - score) AS sd
        FROM read_parquet('{endpoints}') WHERE baseline IS NOT NULL AND score IS NOT NULL
        GROUP BY instrument, visit
    ), d AS (SELECT *, (mb - ms) / sqrt((sb^2 + ss^2) / 2) AS d,
                    sd / sqrt(n) / sqrt((sb^2 + ss^2) / 2) AS se FROM m)
    SELECT instrument, visit, d AS estimate, d - {Z95} * se AS ci_low, d + {Z95} * se AS ci_high, n
    FROM d ORDER BY instrument, target_day
    """


def reference_repeats(endpoints: str) -> str:
    """Rows repeating a patient within an instrument and visit, in SQL.

    ``effect_size_table`` refuses such rows (an effect size needs one row per patient per
    cell), so the reference checks too: a hash aggregation over every patient and cell,
    dearer than the moments themselves.
    """
    return f"""
    SELECT coalesce(sum(k - 1), 0) FROM (
        SELECT count(*) AS k FROM read_parquet('{endpoints}')
        GROUP BY instrument, visit, patient_id
    )
    """


# --------------------------------------------------------------------------- pipelines


class _Steps:
    """Time and peak RSS of each step of a pipeline (the whole process's RSS)."""

    def __init__(self):
        self.results = []

    def run(self, name, func):
        import gc

        gc.collect()
        with _PeakRSS() as rss:
            cpu, start = _cpu(), time.perf_counter()
            value = func()
            seconds, cpu = time.perf_counter() - start, _cpu() - cpu
        self.results.append(
            {"step": name, "seconds": seconds, "cpu": cpu, "peak_mb": rss.peak / 2**20}
        )
        return value


def _cpu() -> float:
    """CPU seconds of this process, every thread (user and system): less sensitive than
    the wall time to other work on a shared machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def library_pipeline(folder: Path, work: Path, engine: str, memory_limit: str | None):
    """The library on ``engine``: steps, their times and the results (small frames)."""
    import narwhals as nw

    from analysis import derive_endpoints, effect_size_table, load_cohort, rate_table

    steps, spark = _Steps(), None
    options = {"memory_limit": memory_limit} if engine == "duckdb" else {}
    if engine == "spark":
        spark = _spark()
        options["spark"] = spark
    cohort = steps.run("validate", lambda: load_cohort(folder, engine=engine, **options))
    path = work / f"endpoints_{engine}.parquet"

    def derive():
        ep = derive_endpoints(cohort, "GAD7")
        if engine == "duckdb":
            ep.write_parquet(str(path))
            # read back on the library's connection (the one with the memory limit)
            return cohort.patients.query("_p", f"SELECT * FROM read_parquet('{path}')")
        ep.write.mode("overwrite").parquet(str(path))
        return spark.read.parquet(str(path))

    endpoints = steps.run("derive", derive)
    sites = nw.from_native(cohort.patients).select("patient_id", "site_id")

    def rates():
        week4 = nw.from_native(endpoints).filter(nw.col("visit") == "week4")
        week4 = week4.join(sites, on="patient_id", how="left").to_native()
        return {o: rate_table(week4, o, by="site_id") for o in ("response", "remission")}

    tables = steps.run("rates", rates)
    effects = steps.run("effect_sizes", lambda: effect_size_table(endpoints))
    return steps.results, tables, effects


def sql_pipeline(folder: Path, work: Path, memory_limit: str | None):
    """The hand-written SQL on a DuckDB connection with the library's DuckDB settings for
    the budget ``memory_limit`` (the same share of it for DuckDB's buffers)."""
    from analysis._engine_validation import _duckdb_connection

    # the connection load_cohort opens: DuckDB's share of the budget, no insertion order
    con = _duckdb_connection(memory_limit or None)
    steps = _Steps()
    counts = steps.run("validate", lambda: reference_validation(con, folder))
    path = work / "endpoints_sql.parquet"
    query = reference_sql(GAD7, table="assessments")
    steps.run("derive", lambda: con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet)"))
    tables = steps.run(
        "rates",
        lambda: {o: con.sql(reference_rates(con, path, o)).df() for o in ("response", "remission")},
    )

    def effect_sizes():
        if con.sql(reference_repeats(str(path))).fetchall()[0][0]:
            raise ValueError("rows repeat a patient within a cell")
        return con.sql(reference_effect_sizes(str(path))).df()

    effects = steps.run("effect_sizes", effect_sizes)
    return steps.results, tables, effects, counts


def _spark():
    from pyspark.sql import SparkSession

    from analysis._engine_validation import SPARK_SETTINGS

    session = (
        SparkSession.builder.master("local[2]")
        .appName("anxiety-outcomes-scale")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .config(map=SPARK_SETTINGS)  # as the library's own session
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


# --------------------------------------------------------------------------- checks


def _library_counts(report) -> dict:
    frames = pd.concat([report.errors, report.findings], ignore_index=True)
    grouped = frames.groupby(["table", "column", "check", "severity"])["count"].sum()
    return {key: int(n) for key, n in grouped.items()}


def check_reference(n_patients: int, work: Path) -> None:
    """Raise unless the SQL gives the library's results on a small registry with errors."""
    import duckdb

    from analysis.schema import validate_cohort

    folder = work / "check"
    write_registry(folder, n_patients, chunk=max(n_patients // 2, 1), seed=99)
    _inject_errors(folder)
    con = duckdb.connect()
    sql_counts = reference_validation(con, folder)
    library = _library_counts(validate_cohort(folder, engine="duckdb"))
    if sql_counts != library:
        raise AssertionError(f"validation counts differ: SQL {sql_counts}, library {library}")
    pandas_counts = _library_counts(
        validate_cohort({t: pd.read_parquet(folder / t) for t in TABLES})
    )
    if pandas_counts != library:
        raise AssertionError("the DuckDB validation differs from the pandas path")
    # the derivation and the statistics, on the registry without the errors
    shutil.rmtree(folder)
    write_registry(folder, n_patients, chunk=max(n_patients // 2, 1), seed=99)
    _, lib_tables, lib_effects = library_pipeline(folder, work, "duckdb", None)
    _, sql_tables, sql_effects, _ = sql_pipeline(folder, work, None)
    ours = pd.read_parquet(work / "endpoints_duckdb.parquet")
    theirs = pd.read_parquet(work / "endpoints_sql.parquet")
    key = ["patient_id", "target_day"]
    ours = ours.sort_values(key, ignore_index=True)
    theirs = theirs.sort_values(key, ignore_index=True)[list(ours.columns)]
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
    for outcome in ("response", "remission"):
        a, b = lib_tables[outcome], sql_tables[outcome]
        for column in ("n", "events", "rate", "ci_low", "ci_high"):
            np.testing.assert_allclose(
                a[column].to_numpy(dtype=float), b[column].to_numpy(dtype=float), rtol=1e-9
            )
    for column in ("estimate", "ci_low", "ci_high"):
        np.testing.assert_allclose(
            lib_effects[column].to_numpy(dtype=float),
            sql_effects[column].to_numpy(dtype=float),
            rtol=1e-9,
        )
    shutil.rmtree(folder)


# --------------------------------------------------------------------------- main


def _worker(args) -> None:
    folder, work = Path(args.data), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)  # a worker run by hand may name a new folder
    if args.worker == "sql":
        results, *_ = sql_pipeline(folder, work, args.memory_limit)
    else:
        results, *_ = library_pipeline(folder, work, args.worker, args.memory_limit)
    print(json.dumps(results))


def _run_worker(kind: str, folder: Path, work: Path, memory_limit: str | None) -> list[dict]:
    command = [sys.executable, __file__, "--worker", kind, "--data", str(folder)]
    command += ["--work", str(work)]
    if memory_limit and kind != "spark":
        command += ["--memory-limit", memory_limit]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _link_subset(source: Path, target: Path, n_chunks: int) -> None:
    """``target`` holding the first ``n_chunks`` chunk files of every table (hard links)."""
    for table in TABLES:
        (target / table).mkdir(parents=True, exist_ok=True)
        for part in sorted((source / table).glob("*.parquet"))[:n_chunks]:
            os.link(part, target / table / part.name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5_000_000)
    parser.add_argument("--chunk", type=int, default=250_000, help="patients per Parquet file")
    parser.add_argument(
        "--memory-limit", default="4GB", help="the process budget (load_cohort's memory_limit)"
    )
    parser.add_argument("--spark-patients", type=int, default=500_000, help="0: no Spark run")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each pipeline")
    parser.add_argument("--check-patients", type=int, default=3_000)
    parser.add_argument("--data", help="folder for the registry (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--registry", help="an existing registry folder (written earlier): no writing, kept"
    )
    parser.add_argument("--worker", choices=["sql", "duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    root = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="registry-"))
    root.mkdir(parents=True, exist_ok=True)
    folder, work = root / "registry", root / "work"
    work.mkdir(exist_ok=True)
    try:
        check_reference(min(args.check_patients, args.patients), work)
        print(
            "The SQL reference gives the library's validation counts, endpoints, rates and effect sizes."
        )
        start = time.perf_counter()
        if args.registry:
            folder = Path(args.registry)
            rows = {t: _rows(folder / t) for t in TABLES}
            args.patients = rows["patients"]
        else:
            rows = write_registry(folder, args.patients, args.chunk)
        print(
            f"Registry of {args.patients:,} patients ({time.perf_counter() - start:.0f} s): "
            + ", ".join(f"{t} {n:,} rows" for t, n in rows.items())
            + f"; {sum(f.stat().st_size for f in folder.rglob('*.parquet')) / 2**30:.2f} GiB of Parquet"
        )
        runs = {"sql": [], "duckdb": []}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):
            for kind in ("sql", "duckdb"):
                runs[kind].append(_run_worker(kind, folder, work, args.memory_limit))
        print(
            f"\nDuckDB, memory_limit={args.memory_limit!r} set by load_cohort (the process "
            f"budget: DuckDB's memory_limit {_share(args.memory_limit)}, for the library and "
            f"the SQL alike); {args.repeats} run(s); load average {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after"
        )
        print(
            f"{'step':<14}{'library s':>14}{'SQL s':>14}{'ratio':>12}{'peak RSS MiB':>16}{'SQL peak MiB':>14}"
            f"{'CPU ratio':>12}"
        )
        for k, step in enumerate(STEPS):
            lib = [r[k] for r in runs["duckdb"]]
            sql = [r[k] for r in runs["sql"]]
            ratio = [a["seconds"] / b["seconds"] for a, b in zip(lib, sql, strict=True)]
            cpu_ratio = [a["cpu"] / max(b["cpu"], 1e-9) for a, b in zip(lib, sql, strict=True)]
            print(
                f"{step:<14}{_spread([r['seconds'] for r in lib], '.1f'):>14}"
                f"{_spread([r['seconds'] for r in sql], '.1f'):>14}"
                f"{_spread(ratio, '.2f') + 'x':>12}"
                f"{_spread([r['peak_mb'] for r in lib], ',.0f'):>16}"
                f"{_spread([r['peak_mb'] for r in sql], ',.0f'):>14}"
                f"{_spread(cpu_ratio, '.2f') + 'x':>12}"
            )
        totals = [sum(s["seconds"] for s in run) for run in runs["duckdb"]]
        sql_totals = [sum(s["seconds"] for s in run) for run in runs["sql"]]
        ratios = [a / b for a, b in zip(totals, sql_totals, strict=True)]
        peak = max(s["peak_mb"] for run in runs["duckdb"] for s in run)
        sql_peak = max(s["peak_mb"] for run in runs["sql"] for s in run)
        print(
            f"{'total':<14}{_spread(totals, '.1f'):>14}{_spread(sql_totals, '.1f'):>14}"
            f"{_spread(ratios, '.2f') + 'x':>12}{peak:>16,.0f}{sql_peak:>14,.0f}"
        )
        if args.memory_limit:
            from analysis._engine_validation import parse_size

            budget = parse_size(args.memory_limit) / 2**20
            print(
                f"Budget {args.memory_limit} = {budget:,.0f} MiB: peak RSS {peak / budget:.0%} "
                f"of it (library), {sql_peak / budget:.0%} (SQL)"
            )
        sys.stdout.flush()
        if args.spark_patients:
            subset = root / "spark"
            n_chunks = max(1, math.ceil(args.spark_patients / args.chunk))
            _link_subset(folder, subset, n_chunks)
            n = min(args.patients, n_chunks * args.chunk)
            results = _run_worker("spark", subset, work, None)
            print(f"\nSpark (local[2], driver 4g), {n:,} patients:")
            for r in results:
                print(f"{r['step']:<14}{r['seconds']:>10.1f} s")
            print(f"{'total':<14}{sum(r['seconds'] for r in results):>10.1f} s")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet"))


def _share(budget: str | None) -> str:
    """DuckDB's memory_limit for the budget, and its share of it (``"3.00 GB, 75%"``)."""
    from analysis._engine_validation import duckdb_memory_limit, parse_size

    if budget is None:
        return "DuckDB's default"
    setting = int(duckdb_memory_limit(budget)[:-1])
    return f"{setting / 1e9:.2f} GB, {setting / parse_size(budget):.0%} of it"


def _spread(values, fmt: str) -> str:
    low, high = format(min(values), fmt), format(max(values), fmt)
    return low if low == high else f"{low}-{high}"


if __name__ == "__main__":
    main()
