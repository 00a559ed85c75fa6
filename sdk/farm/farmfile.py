"""farm.toml: the devices of a farm, where its results go. Every mistake is one line naming file:line.

    [store]
    path = "results.sqlite"          # relative to this file, or postgresql://...; default $EDGESLM_STORE or
                                     # <cache>/farm/results.sqlite

    [[device]]
    id = "pc"                        # required, unique; any characters (never reaches a shell)
    driver = "local"                 # required: a registered driver (local, qemu-aarch64, ssh, adb, ...)
    target = "host"                  # required: a target profile (edgeslm targets)
    labels = ["x86", "ci"]           # optional
    workdir = "/tmp/farm-pc"         # optional; plus the driver's own keys (ssh: host, port, user, ...)

Steps of load_farm(path): read + parse (TOML syntax errors keep their line) -> check top-level tables ->
per [[device]]: required fields, known keys (common + the driver's CONFIG_KEYS), unique id -> Farm with
specs; open(id) builds the Device through the driver's from_config (or its constructor + workdir).
Default location when --farm is not given: $EDGESLM_FARM, else ./farm.toml.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgeslm.errors import EdgeSLMError

REQUIRED = ("id", "driver", "target")
COMMON = {"id", "driver", "target", "labels", "workdir"}
TOP = {"store", "device"}
STORE_KEYS = {"path"}


def default_farm_path() -> Path:
    return Path(os.environ.get("EDGESLM_FARM") or "farm.toml")


@dataclass
class Farm:
    path: Path
    devices: dict[str, dict]               # id -> the [[device]] table (plus "_line")
    store: Path | str | None = None           # a SQLite path or a postgresql:// URL
    _open: dict = field(default_factory=dict)

    def open(self, device_id: str):
        """The Device for an id (built once); its .id is the farm id and .labels the labels."""
        if device_id not in self._open:
            self._open[device_id] = open_from_config(self.devices[device_id], self.path.parent, self.path)
        return self._open[device_id]

    def select(self, ids: list[str] | None) -> list[str]:
        if not ids:
            return list(self.devices)
        unknown = [i for i in ids if i not in self.devices]
        if unknown:
            raise EdgeSLMError(f"no device '{unknown[0]}' in the farm", path=self.path,
                               fix=f"devices: {', '.join(self.devices)}")
        return list(dict.fromkeys(ids))


def _lines(text: str) -> tuple[list[int], dict[tuple[int, str], int], dict[str, int]]:
    """Line numbers: of each [[device]] header, of each key inside device i, of top-level keys/tables."""
    headers, keys, top = [], {}, {}
    section = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if m := re.match(r"^\[\[\s*([\w.-]+)\s*\]\]", line):
            section = m.group(1)
            top.setdefault(section.split(".")[0], no)
            if section == "device":
                headers.append(no)
        elif m := re.match(r"^\[\s*([\w.-]+)\s*\]", line):
            section = m.group(1)
            top.setdefault(section.split(".")[0], no)
        elif m := re.match(r"^([\w-]+|\"[^\"]*\")\s*=", line):
            key = m.group(1).strip('"')
            if section is None:
                top.setdefault(key, no)
            elif section == "device" and headers:
                keys.setdefault((len(headers) - 1, key), no)
    return headers, keys, top


def load_farm(path: str | Path | None = None) -> Farm:
    from edgeslm.farm.device import DRIVERS
    import edgeslm.farm  # noqa: F401  (registers the drivers)

    path = (Path(path) if path else default_farm_path()).absolute()
    if not path.is_file():
        raise EdgeSLMError("no farm file", path=path, fix="pass --farm FILE or create farm.toml "
                                                          "(see README: the device farm)")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise EdgeSLMError(f"not valid TOML: {err}", path=path, fix="fix the syntax on that line") from None
    headers, keys, top = _lines(text)

    def where(line: int | None) -> str:
        return f"{path}:{line}" if line else str(path)

    for key in data:
        if key not in TOP:
            raise EdgeSLMError(f"unknown key '{key}'", path=where(top.get(key)),
                               fix=f"top-level tables are {', '.join(sorted(TOP))}")
    store = data.get("store", {})
    for key in store:
        if key not in STORE_KEYS:
            raise EdgeSLMError(f"unknown key '{key}' in [store]", path=where(top.get("store")), fix="only 'path'")
    entries = data.get("device", [])
    if not isinstance(entries, list) or not entries:
        raise EdgeSLMError("no [[device]] tables", path=path, fix="add one per device (id, driver, target)")
    devices: dict[str, dict] = {}
    for i, entry in enumerate(entries):
        header = headers[i] if i < len(headers) else None
        for req in REQUIRED:
            if not isinstance(entry.get(req), str) or not entry[req]:
                raise EdgeSLMError(f"[[device]] #{i + 1} lacks '{req}'", path=where(header),
                                   fix=f"every device needs {', '.join(REQUIRED)} (strings)")
        driver = DRIVERS.get(entry["driver"])
        if driver is None:
            raise EdgeSLMError(f"unknown driver '{entry['driver']}'", path=where(keys.get((i, "driver"), header)),
                               fix=f"drivers: {', '.join(sorted(DRIVERS))}")
        allowed = COMMON | set(getattr(driver, "CONFIG_KEYS", ()))
        for key in entry:
            if key not in allowed:
                raise EdgeSLMError(f"unknown key '{key}' for a {entry['driver']} device",
                                   path=where(keys.get((i, key), header)),
                                   fix=f"allowed: {', '.join(sorted(allowed))}")
        if entry["id"] in devices:
            raise EdgeSLMError(f"device id '{entry['id']}' given twice", path=where(keys.get((i, "id"), header)),
                               fix="ids must be unique")
        labels = entry.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise EdgeSLMError("labels must be a list of strings", path=where(keys.get((i, "labels"), header)))
        devices[entry["id"]] = {**entry, "_line": header}
    store_path = store.get("path")
    if store_path is not None and not str(store_path).startswith(("postgresql://", "postgres://")):
        store_path = Path(store_path) if Path(store_path).is_absolute() else path.parent / store_path
    return Farm(path.resolve(), devices, store_path)


def device_workdir(cfg: dict, base: Path) -> Path:
    """The table's workdir (relative to the farm file), else a folder of the driver's own per device id, so
    two devices of one driver on this machine never push into the same folder at once."""
    import hashlib
    from edgeslm.farm.device import default_workdir
    if cfg.get("workdir"):
        return Path(base) / cfg["workdir"]
    return default_workdir(cfg["driver"]) / hashlib.sha256(cfg["id"].encode()).hexdigest()[:12]


def open_from_config(cfg: dict, base: Path, farm_path: Path | None = None):
    """Device from a [[device]] table: the driver's from_config(cfg, base) if it has one, else
    driver(target, workdir=...). Relative paths in the table are relative to the farm file's folder."""
    from edgeslm.farm.device import DRIVERS
    import edgeslm.farm  # noqa: F401

    cls = DRIVERS[cfg["driver"]]
    clean = {k: v for k, v in cfg.items() if not k.startswith("_")}
    try:
        if hasattr(cls, "from_config"):
            dev = cls.from_config(clean, Path(base))
        else:
            dev = cls(clean["target"], workdir=device_workdir(clean, base))
    except EdgeSLMError as err:
        line = cfg.get("_line")
        raise EdgeSLMError(f"device '{cfg['id']}': {err}",
                           path=f"{farm_path}:{line}" if farm_path and line else farm_path) from None
    dev.id = clean["id"]
    dev.labels = list(clean.get("labels", []))
    return dev
