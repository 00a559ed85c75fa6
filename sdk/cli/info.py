"""edgeslm info BUNDLE [--json]"""
from __future__ import annotations

from edgeslm.cli.common import human_bytes, print_json, print_table


def add_arguments(parser) -> None:
    parser.add_argument("bundle")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from edgeslm import api
    m = api.info(args.bundle)
    if args.json:
        print_json(m)
        return 0
    acc = m.get("accuracy", {})
    print_table(f"bundle {m['path']}", [
        ("model", f"{m['model']['architecture']}, {m['model'].get('parameters', 0) / 1e6:.1f} M params"),
        ("source", m["model"].get("source", "")),
        ("backend / target / quant", f"{m['backend']} / {m['target']['name']} / {m['quant']['name']}"),
        ("max context", str(m["model"]["max_seq_len"])),
        ("vocab / bos / eos", f"{m['model']['vocab_size']} / {m['model']['bos_id']} / {m['model']['eos_ids']}"),
        ("files", ", ".join(f"{k} ({human_bytes(v['bytes'])})" for k, v in m["files"].items())),
        ("expected memory", human_bytes(m.get("memory", {}).get("expected_peak_bytes", 0))),
        ("top-1 agreement / KL", f"{acc.get('top1_agreement', float('nan')):.4f} / {acc.get('kl_mean', float('nan')):.2e}"),
        ("toolchain", ", ".join(f"{k} {v}" for k, v in m["toolchain"].items())),
        ("created", m.get("created_utc", "")),
    ])
    return 0
