"""The results store on PostgreSQL, for a team that shares one (optional: `pip install psycopg[binary]`).

Same interface and schema as store.Store (SQLite): a `postgresql://user@host:port/db` URL anywhere a store
path is accepted (--store, farm.toml [store] path). One transaction per result; UNIQUE(run_id, job_key)
with ON CONFLICT DO NOTHING, so resumes and concurrent controllers never duplicate a job.
"""
from __future__ import annotations

import json
import threading

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.store import PROMOTED, SCHEMA_VERSION, _now, result_row

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, created_utc TEXT NOT NULL, spec_json TEXT NOT NULL, "
    "edgeslm_version TEXT, edgeslm_commit TEXT)",
    "CREATE TABLE IF NOT EXISTS results (id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id), "
    "job_key TEXT NOT NULL, created_utc TEXT NOT NULL, device TEXT, requested_device TEXT, target TEXT, bundle TEXT, "
    "bundle_sha256 TEXT, backend TEXT, quant TEXT, prompt_length INTEGER, threads INTEGER, status TEXT NOT NULL, "
    "error TEXT, attempts INTEGER, worker TEXT, metrics_json TEXT NOT NULL, provenance_json TEXT NOT NULL, "
    "UNIQUE (run_id, job_key))",
]


def is_url(spec) -> bool:
    return str(spec).startswith(("postgresql://", "postgres://"))


class PgStore:
    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:
            raise EdgeSLMError("a postgresql:// store needs psycopg", fix="pip install 'psycopg[binary]'") from None
        self.path = url
        self._lock = threading.Lock()
        self._errors = psycopg.Error
        try:
            self.db = psycopg.connect(url, connect_timeout=15)
            with self._lock, self.db.transaction():
                self.db.execute("SELECT pg_advisory_xact_lock(7007)")     # two controllers creating at once
                for stmt in DDL:
                    self.db.execute(stmt)
                row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    self.db.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise EdgeSLMError(f"results store has schema {row[0]}, this edgeslm reads up to "
                                       f"{SCHEMA_VERSION}", path=url, fix="upgrade edgeslm")
        except psycopg.Error as err:
            raise EdgeSLMError(f"cannot use the PostgreSQL store: {str(err).strip().splitlines()[0]}", path=url,
                               fix="check the server, the URL and the role's rights") from None

    def _write(self, sql: str, args: tuple) -> int:
        try:
            with self._lock, self.db.transaction():
                return self.db.execute(sql, args).rowcount
        except self._errors as err:
            raise EdgeSLMError(f"cannot write the results store ({str(err).strip().splitlines()[0]}); results "
                               "committed so far are kept", path=self.path,
                               fix="fix the server, then `edgeslm profile --resume RUN_ID`") from None

    def _read(self, sql: str, args: tuple = ()) -> list:
        with self._lock, self.db.transaction():
            return self.db.execute(sql, args).fetchall()

    def create_run(self, run_id: str, spec: dict) -> None:
        from edgeslm import __version__
        from edgeslm.farm.metrics import edgeslm_commit
        n = self._write("INSERT INTO runs VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (run_id, _now(), json.dumps(spec, sort_keys=True), __version__, edgeslm_commit()["commit"]))
        if n != 1:
            raise EdgeSLMError(f"run '{run_id}' already exists", path=self.path, fix=f"use --resume {run_id}")

    def add_result(self, run_id: str, job_key: str, row: dict) -> bool:
        cols = [row.get(k) for k in PROMOTED]
        metrics = {k: v for k, v in row.items() if k not in PROMOTED and k != "provenance"}
        sql = (f"INSERT INTO results (run_id, job_key, created_utc, {', '.join(PROMOTED)}, metrics_json, "
               f"provenance_json) VALUES ({', '.join(['%s'] * (len(PROMOTED) + 5))}) "
               "ON CONFLICT (run_id, job_key) DO NOTHING")
        return self._write(sql, (run_id, job_key, _now(), *cols, json.dumps(metrics, default=str),
                                 json.dumps(row.get("provenance") or {}, default=str))) == 1

    def run(self, run_id: str) -> dict:
        rows = self._read("SELECT run_id, created_utc, spec_json, edgeslm_version, edgeslm_commit FROM runs "
                          "WHERE run_id = %s", (run_id,))
        if not rows:
            raise EdgeSLMError(f"no run '{run_id}' in the results store", path=self.path)
        r = rows[0]
        return {"run_id": r[0], "created_utc": r[1], "spec": json.loads(r[2]), "edgeslm_version": r[3],
                "edgeslm_commit": r[4]}

    def runs(self) -> list[dict]:
        q = ("SELECT r.run_id, r.created_utc, COUNT(x.id) FROM runs r LEFT JOIN results x ON x.run_id = r.run_id "
             "GROUP BY r.run_id, r.created_utc ORDER BY r.created_utc")
        return [{"run_id": a, "created_utc": b, "results": n} for a, b, n in self._read(q)]

    def done_keys(self, run_id: str) -> set[str]:
        return {k for (k,) in self._read("SELECT job_key FROM results WHERE run_id = %s", (run_id,))}

    def results(self, run_id: str) -> list[dict]:
        return [result_row(rec) for rec in self._read(
            f"SELECT id, job_key, created_utc, {', '.join(PROMOTED)}, metrics_json, "
            "provenance_json FROM results WHERE run_id = %s ORDER BY id", (run_id,))]

    def close(self) -> None:
        self.db.close()
