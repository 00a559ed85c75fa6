"""edgeslm export CHECKPOINT --backend B --target T --quant Q -o OUT

CHECKPOINT may be path/to/file.py:factory (any PyTorch model, edgeslm.anymodel): a decoder meeting the
contract, or with --example-inputs name:dtype[shape],... a plain graph."""
from __future__ import annotations

from edgeslm.cli.common import add_output_flags, human_bytes, print_json, print_table


def add_arguments(parser) -> None:
    from edgeslm.compilers import COMPILERS
    from edgeslm.quant import RECIPES
    from edgeslm.targets import TARGETS
    parser.add_argument("checkpoint", help="HF checkpoint dir, HF cache dir (models--org--name) or .gguf file")
    parser.add_argument("--backend", default="executorch", choices=sorted(COMPILERS))
    parser.add_argument("--target", default="host", help=f"one of: {', '.join(sorted(TARGETS))}")
    parser.add_argument("--quant", default="fp32", help=f"recipe: {', '.join(RECIPES)} or a recipe .json file")
    parser.add_argument("--max-seq-len", type=int, default=None, help="context of the bundle (default: min(model, 2048))")
    parser.add_argument("--kv-cache", default=None, choices=["float16", "float32", "int8"],
                        help="ExecuTorch: the attention cache's dtype (default float16 for int4/int8, float32 for "
                             "fp32; int8 = a float32 scale per key and value row, ~half of float16's bytes)")
    parser.add_argument("-o", "--out", required=True, help="bundle directory to write")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--example-inputs", default=None, metavar="SPEC",
                        help="file.py:factory only: export a plain graph, e.g. tokens:int64[1,128],mask:float32[1,128]")
    parser.add_argument("--tokenizer", default=None, help="file.py:factory decoders: folder with tokenizer.json")
    add_output_flags(parser)


def run(args) -> int:
    from edgeslm import api
    from edgeslm.anymodel.factory import is_factory_spec
    if is_factory_spec(args.checkpoint):
        return _run_module(args)
    options = {}
    if args.kv_cache:
        if args.backend != "executorch":
            from edgeslm.errors import EdgeSLMError
            raise EdgeSLMError(f"--kv-cache is an option of the executorch backend, not {args.backend}",
                               fix="drop --kv-cache or pass --backend executorch")
        options["kv_cache"] = args.kv_cache
    bundle = api.export(args.checkpoint, out=args.out, backend=args.backend, target=args.target, quant=args.quant,
                        max_seq_len=args.max_seq_len, force=args.force, progress=not (args.quiet or args.json),
                        backend_options=options)
    m = bundle.manifest
    if args.json:
        print_json(dict(m, path=str(bundle.path)))
        return 0
    acc = m["accuracy"]
    low = m["lowering"]
    print_table(f"bundle {bundle.path}", [
        ("model", f"{m['model']['architecture']} ({m['model']['parameters'] / 1e6:.1f} M params)"),
        ("backend / target / quant", f"{m['backend']} / {m['target']['name']} / {m['quant']['name']}"),
        ("artifact", f"{m['artifact']} {human_bytes(m['memory']['artifact_bytes'])}"),
        ("planned arena", human_bytes(m["memory"]["planned_arena_bytes"])),
        ("delegated ops", ", ".join(f"{k}: {v}" for k, v in low["delegated"].items()) or "none"),
        ("ops on CPU kernels", ", ".join(f"{f['op']}x{f['count']}" for f in low["fallbacks"]) or "none"),
        *([("top-1 agreement vs float", f"{acc['top1_agreement']:.4f} over {acc['positions']} positions"),
           ("KL(float || bundle)", f"{acc['kl_mean']:.2e} mean, {acc['kl_max']:.2e} max"),
           ("greedy tokens match float", str(acc["greedy_match"]))] if "top1_agreement" in acc
          else [("accuracy vs float", acc.get("status", "not run"))]),
        *([("accuracy runtime", acc["runtime"])] if acc.get("runtime", "native") != "native" else []),
        ("export time", f"{m['export_seconds']:.1f} s"),
    ])
    return 0


def _run_module(args) -> int:
    """file.py:factory -> edgeslm.anymodel.export_module (decoder, or plain graph with --example-inputs)."""
    from edgeslm.anymodel import export_module
    from edgeslm.anymodel.factory import load_factory
    model = load_factory(args.checkpoint)
    bundle = export_module(model, out=args.out, backend=args.backend, target=args.target, quant=args.quant,
                           force=args.force, progress=not (args.quiet or args.json), tokenizer_dir=args.tokenizer,
                           example_inputs=args.example_inputs)
    m = bundle.manifest
    if args.json:
        print_json(dict(m, path=str(bundle.path)))
        return 0
    acc = m["accuracy"]
    rows = [("model", f"{m['model']['architecture']} ({m['model']['parameters'] / 1e6:.2f} M params)"),
            ("backend / target / quant", f"{m['backend']} / {m['target']['name']} / {m['quant']['name']}"),
            ("artifact", m["artifact"])]
    if m["model"].get("kind") == "graph":
        rows += [("inputs", ", ".join(f"{i['name']}:{i['dtype']}{i['shape']}" for i in m["model"]["inputs"])),
                 ("outputs", ", ".join(f"{o['name']}:{o['dtype']}{o['shape']}" for o in m["model"]["outputs"])),
                 ("outputs allclose eager",
                  f"{acc['allclose']} (max |diff| {max(acc['max_abs_diff'], default=0):.2e})")]
    elif "top1_agreement" in acc:
        rows += [("top-1 agreement vs eager", f"{acc['top1_agreement']:.4f} over {acc['positions']} positions"),
                 ("greedy tokens match eager", str(acc["greedy_match"]))]
    print_table(f"bundle {bundle.path}", rows + [("export time", f"{m['export_seconds']:.1f} s")])
    return 0
