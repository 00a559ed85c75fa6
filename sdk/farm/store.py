"""The results store: every farm result ever measured, in one SQLite file (schema versioned).

Steps:
  1. open(path): connect, WAL journal, busy timeout (two `edgeslm profile` processes may write at once),
     create or check the schema (meta.schema_version; a newer file is refused, never rewritten)
  2. create_run(run_id, spec): the run's spec (farm file, bundles, devices, settings) so `--resume` can
     rebuild the same job list
  3. add_result(run_id, job_key, row): ONE transaction per result; UNIQUE(run_id, job_key) makes a
     resumed or repeated job a no-op, so nothing is duplicated; a `kill -9` of the controller loses at most
     the jobs in flight (their rows were never committed)
  4. results(run_id) / runs(): rows back as dicts (metrics and provenance are JSON, so missing or extra
     metric fields from other drivers -- e.g. MCU instructions_per_token -- are kept as they came)

A full disk or an unwritable file is an EdgeSLMError naming the store (exit 2); committed rows stay.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from edgeslm.errors import EdgeSLMError

SCHEMA_VERSION = 1
# Columns promoted out of the JSON for queries; everything else lives in metrics_json / provenance_json.
PROMOTED = ("device", "requested_device", "target", "bundle", "bundle_sha256", "backend", "quant",
            "prompt_length", "threads", "status", "error", "attempts", "worker")
DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, created_utc TEXT NOT NULL, spec_json TEXT NOT NULL,
  edgeslm_version TEXT, edgeslm_commit TEXT);
CREATE TABLE IF NOT EXISTS results (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES runs(run_id), job_key TEXT NOT NULL, created_utc TEXT NOT NULL,
  device TEXT, requested_device TEXT, target TEXT, bundle TEXT, bundle_sha256 TEXT, backend TEXT, quant TEXT,
  prompt_length INTEGER, threads INTEGER, status TEXT NOT NULL, error TEXT, attempts INTEGER, worker TEXT,
  metrics_json TEXT NOT NULL, provenance_json TEXT NOT NULL,
  UNIQUE (run_id, job_key));
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);
"""


def default_store_path() -> Path:
    """$EDGESLM_STORE, else <cache>/farm/results.sqlite (farm.toml's [store] path overrides this)."""
    if os.environ.get("EDGESLM_STORE"):
        return Path(os.environ["EDGESLM_STORE"])
    from edgeslm.native import cache_root
    return cache_root() / "farm" / "results.sqlite"


def open_store(spec: str | Path):
    """A results store from a path (SQLite) or a postgresql:// URL (store_pg.PgStore, optional psycopg)."""
    from edgeslm.farm.store_pg import PgStore, is_url
    return PgStore(str(spec)) if is_url(spec) else Store(spec)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """One SQLite results file. Thread-safe (one connection behind a lock); processes share it via WAL."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")       # a committed result survives power loss too
            self.db.execute("PRAGMA busy_timeout=60000")
            with self._tx() as db:
                for stmt in filter(str.strip, DDL.split(";")):
                    db.execute(stmt)
                row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise EdgeSLMError(f"results store has schema {row[0]}, this edgeslm reads up to "
                                       f"{SCHEMA_VERSION}", path=self.path, fix="upgrade edgeslm")
        except sqlite3.DatabaseError as err:
            raise self._error(err) from None

    # ---- writing: one short transaction each

    def _tx(self):
        store = self

        class Tx:
            def __enter__(self):
                store._lock.acquire()
                try:
                    store.db.execute("BEGIN IMMEDIATE")
                except BaseException:
                    store._lock.release()
                    raise
                return store.db

            def __exit__(self, kind, value, tb):
                try:
                    if kind is None:
                        store.db.execute("COMMIT")
                    else:
                        store.db.execute("ROLLBACK")
                except sqlite3.DatabaseError:
                    if kind is None:
                        try:
                            store.db.execute("ROLLBACK")
                        except sqlite3.DatabaseError:
                            pass
                        raise
                finally:
                    store._lock.release()
                return False

        return Tx()

    def _error(self, err: Exception) -> EdgeSLMError:
        text = str(err)
        if "full" in text or "disk I/O" in text or "readonly" in text or "unable to open" in text:
            return EdgeSLMError(f"cannot write the results store ({text}); results committed so far are kept",
                                path=self.path, fix="free space on its disk or pass another --store, then "
                                                    "`edgeslm profile --resume RUN_ID` to finish the run")
        return EdgeSLMError(f"results store error: {text}", path=self.path,
                            fix="check the file is an edgeslm results store (SQLite)")

    def create_run(self, run_id: str, spec: dict) -> None:
        from edgeslm import __version__
        from edgeslm.farm.metrics import edgeslm_commit
        try:
            with self._tx() as db:
                db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                           (run_id, _now(), json.dumps(spec, sort_keys=True), __version__,
                            edgeslm_commit()["commit"]))
        except sqlite3.IntegrityError:
            raise EdgeSLMError(f"run '{run_id}' already exists", path=self.path,
                               fix=f"use --resume {run_id} to continue it") from None
        except sqlite3.DatabaseError as err:
            raise self._error(err) from None

    def add_result(self, run_id: str, job_key: str, row: dict) -> bool:
        """Commit one result; False (and nothing written) when this job already has one."""
        cols = {k: row.get(k) for k in PROMOTED}
        metrics = {k: v for k, v in row.items() if k not in PROMOTED and k != "provenance"}
        try:
            with self._tx() as db:
                cur = db.execute(
                    f"INSERT OR IGNORE INTO results (run_id, job_key, created_utc, {', '.join(PROMOTED)}, "
                    f"metrics_json, provenance_json) VALUES ({', '.join('?' * (len(PROMOTED) + 5))})",
                    (run_id, job_key, _now(), *cols.values(), json.dumps(metrics, default=str),
                     json.dumps(row.get("provenance") or {}, default=str)))
                return cur.rowcount == 1
        except sqlite3.DatabaseError as err:
            raise self._error(err) from None

    # ---- reading

    def run(self, run_id: str) -> dict:
        row = self.db.execute("SELECT run_id, created_utc, spec_json, edgeslm_version, edgeslm_commit FROM runs "
                              "WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self.db.execute("SELECT run_id FROM runs ORDER BY created_utc DESC LIMIT 5")]
            raise EdgeSLMError(f"no run '{run_id}' in the results store", path=self.path,
                               fix=f"recent runs: {', '.join(known) or 'none'}")
        return {"run_id": row[0], "created_utc": row[1], "spec": json.loads(row[2]), "edgeslm_version": row[3],
                "edgeslm_commit": row[4]}

    def runs(self) -> list[dict]:
        q = ("SELECT r.run_id, r.created_utc, COUNT(x.id) FROM runs r LEFT JOIN results x ON x.run_id = r.run_id "
             "GROUP BY r.run_id ORDER BY r.created_utc")
        return [{"run_id": a, "created_utc": b, "results": n} for a, b, n in self.db.execute(q)]

    def done_keys(self, run_id: str) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT job_key FROM results WHERE run_id = ?", (run_id,))}

    def results(self, run_id: str) -> list[dict]:
        cur = self.db.execute(f"SELECT id, job_key, created_utc, {', '.join(PROMOTED)}, metrics_json, "
                              "provenance_json FROM results WHERE run_id = ? ORDER BY id", (run_id,))
        return [result_row(rec) for rec in cur]

    def close(self) -> None:
        self.db.close()


def result_row(rec) -> dict:
    """(id, job_key, created_utc, *PROMOTED, metrics_json, provenance_json) -> the result dict (both stores)."""
    row = dict(zip(("id", "job_key", "created_utc", *PROMOTED), rec[:-2]))
    row.update(json.loads(rec[-2]))
    row["provenance"] = json.loads(rec[-1])
    return row
