"""Train the nanoGPT example for about a minute on the CPU, export it with edgeslm and generate from the bundle.

Steps: corpus (the Zen of Python, from the standard library: no download) -> character vocabulary and
tokenizer.json -> seeded training of NanoGPT on random windows (AdamW) -> weights saved (state_dict,
loaded with weights_only=True) -> edgeslm.export(model) through ExecuTorch (eager vs bundle check)
-> edgeslm run on the bundle.

    .venv/bin/python examples/nanogpt/train.py --out /tmp/nanogpt --seconds 60
"""
from __future__ import annotations

import argparse
import codecs
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chars import vocab_of, write_char_tokenizer  # noqa: E402
from model import NanoGPT  # noqa: E402

SIZE = dict(n_layer=2, n_head=4, n_embd=64, max_seq_len=128)


def corpus() -> str:
    import this   # noqa: F401  (prints the Zen once; its text is ROT13 in this.s)
    return codecs.decode(sys.modules["this"].s, "rot13")


def make_trained(weights: str | Path) -> NanoGPT:
    """Factory for `edgeslm export examples/nanogpt/train.py:make_trained`: the trained weights."""
    state = torch.load(weights, map_location="cpu", weights_only=True)   # tensors only, never arbitrary pickles
    model = NanoGPT(state["wte.weight"].shape[0], **SIZE)
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.enable_grad()     # callers may have exported before (torch.set_grad_enabled(False) is process-wide)
def train(text: str, vocab: list[str], seconds: float, seed: int = 0, block: int = 48, batch: int = 12):
    torch.manual_seed(seed)
    stoi = {c: i for i, c in enumerate(vocab)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    model = NanoGPT(len(vocab), **SIZE)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    started, step, losses = time.perf_counter(), 0, []
    model.train()
    while time.perf_counter() - started < seconds:
        ix = torch.randint(len(data) - block - 1, (batch,), generator=gen)
        x = torch.stack([data[i:i + block] for i in ix])                 # [B, T]
        y = torch.stack([data[i + 1:i + block + 1] for i in ix])         # [B, T]
        loss = F.cross_entropy(model.train_logits(x).reshape(-1, len(vocab)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 100 == 0:
            print(f"step {step:5d}  loss {sum(losses[-100:]) / 100:.3f}  {time.perf_counter() - started:.0f}s")
    return model.eval(), step, losses


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt", default="Beautiful is ")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    import edgeslm.api as edgeslm
    text = corpus()
    vocab = vocab_of(text)
    tok_dir = write_char_tokenizer(vocab, args.out / "tokenizer")
    model, steps, losses = train(text, vocab, args.seconds, args.seed)
    print(f"trained {steps} steps: loss {losses[0]:.3f} -> {sum(losses[-50:]) / min(50, len(losses)):.3f}")
    torch.save(model.state_dict(), args.out / "nanogpt.pt")

    bundle = edgeslm.export(model, out=args.out / "bundle", tokenizer_dir=tok_dir, force=True)
    acc = bundle.manifest["accuracy"]
    print(f"bundle {bundle.path}: greedy_match={acc['greedy_match']} max|dlogit|={acc['max_abs_logit_diff']:.2e}")
    result = edgeslm.run(bundle.path, args.prompt, max_new_tokens=120)
    print(repr(args.prompt + result.text))


if __name__ == "__main__":
    main()
