"""Python reference of the firmware's integer arithmetic (runtime/micro/kernels.c + model.c), bit-exact.

Every helper here is the twin of the C function of the same name; all values are numpy int64 (the C code
uses int32 storage with int64 intermediates and saturates where it stores, as sat32 does here).
IntegerModel.forward(ids, start_pos) runs one step per token, like the firmware, and returns the last
step's logits in Q16; MicroSession wraps it with float logits for the export's accuracy check.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeslm.compilers.micro.tables import EXP_HI, EXP_INT, EXP_INT_N, EXP_LO

I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1


def rshr(v, n):
    """Round-half-up arithmetic shift right by n (left shift if n < 0); v, n int64 arrays or ints."""
    v, n = np.asarray(v, np.int64), np.asarray(n, np.int64)
    pos = np.maximum(n, 1)
    right = (v + (np.int64(1) << (pos - 1))) >> pos
    left = v * (np.int64(1) << np.maximum(-n, 0))
    return np.where(n > 0, right, np.where(n == 0, v, left))


def sat32(v):
    return np.clip(np.asarray(v, np.int64), I32_MIN, I32_MAX)


def div_round(a, b: int):
    a = np.asarray(a, np.int64)
    return np.where(a >= 0, (a + b // 2) // b, -((-a + b // 2) // b))


def exp_q30(d):
    x = -np.asarray(d, np.int64)                       # >= 0, Q16
    n = x >> 16
    ok = n < EXP_INT_N
    r = EXP_INT[np.where(ok, n, 0)]
    r = rshr(r * EXP_HI[(x >> 8) & 255], 30)
    r = rshr(r * EXP_LO[x & 255], 30)
    return np.where(ok, r, 0)


def quant_act(x) -> tuple[np.ndarray, int]:
    x = np.asarray(x, np.int64)
    m = int(np.abs(x).max()) if x.size else 0
    e = 0
    while int(rshr(m, e)) > 127:
        e += 1
    return np.clip(rshr(x, e), -127, 127), e


def matvec(lin: dict, q: np.ndarray, e: int) -> np.ndarray:
    acc = lin["w"] @ q                                 # int64 sums == the firmware's int32 sums
    return sat32(rshr(acc * lin["mult"], lin["shift"] - e))


def rmsnorm(x, w_q16, eps_q32: int):
    x = np.asarray(x, np.int64)
    t = int((x * x).sum()) // len(x) + eps_q32          # mean square, Q32
    sd = math_isqrt(t << 16) if t < (1 << 47) else math_isqrt(t) << 8   # Q24
    inv = (1 << 48) // sd                              # Q24
    h = rshr(x * inv, 24)
    return sat32(rshr(h * w_q16, 16))


def math_isqrt(v: int) -> int:
    import math
    return math.isqrt(v)


def rope(x, heads: int, head_dim: int, cos, sin):
    v = np.asarray(x, np.int64).reshape(heads, head_dim)
    half = head_dim // 2
    a, b = v[:, :half], v[:, half:]
    out = np.concatenate([sat32(rshr(a * cos - b * sin, 30)), sat32(rshr(b * cos + a * sin, 30))], axis=1)
    return out.reshape(-1)


def silu_mul(g, u):
    x = np.asarray(g, np.int64)
    neg = np.where(x >= 0, -np.minimum(x, I32_MAX), x)   # -|x|
    e = exp_q30(neg)
    one = np.int64(1) << 30
    sig = np.where(x >= 0, (np.int64(1) << 60) // (one + e), (e << 30) // (one + e))
    s = rshr(x * sig, 30)
    return sat32(rshr(s * u, 16))


class IntegerModel:
    """The weights blob + layout of a micro bundle (or of a fresh quantization), run step by step."""

    def __init__(self, blob: bytes, layout: dict, meta: dict):
        self.meta = meta
        self.t = {}
        for name, spec in layout.items():
            n = int(np.prod(spec["shape"])) if spec["shape"] else 1
            a = np.frombuffer(blob, dtype=spec["dtype"], count=n, offset=spec["offset"]).reshape(spec["shape"])
            self.t[name] = a.astype(np.int64)
        m = meta
        self.kvdim = m["kv_heads"] * m["head_dim"]
        self.reset()

    @classmethod
    def from_dir(cls, folder: Path) -> "IntegerModel":
        info = json.loads((folder / "model_layout.json").read_text())
        return cls((folder / "weights.bin").read_bytes(), info["tensors"], info["model"])

    def reset(self) -> None:
        m = self.meta
        self.kc = np.zeros((m["layers"], m["seq"], self.kvdim), np.int64)   # int8 values
        self.vc = np.zeros_like(self.kc)
        self.ke = np.zeros((m["layers"], m["seq"], m["kv_heads"]), np.int64)
        self.ve = np.zeros_like(self.ke)

    def lin(self, name: str) -> dict:
        return {k: self.t[f"{name}.{k}"] for k in ("w", "mult", "shift")}

    def _store_kv(self, src, cache, exps, layer: int, pos: int) -> None:
        d = self.meta["head_dim"]
        for g in range(self.meta["kv_heads"]):
            q, e = quant_act(src[g * d:(g + 1) * d])
            cache[layer, pos, g * d:(g + 1) * d] = q
            exps[layer, pos, g] = e

    def _attention(self, layer: int, pos: int, q) -> np.ndarray:
        m, d = self.meta, self.meta["head_dim"]
        rep = m["heads"] // m["kv_heads"]
        out = np.zeros(m["heads"] * d, np.int64)
        for h in range(m["heads"]):
            g = h // rep
            k = self.kc[layer, :pos + 1, g * d:(g + 1) * d]           # [t, D]
            acc = k @ q[h * d:(h + 1) * d]                           # [t] int64
            att = sat32(rshr(acc * m["attn_scale_q16"], 32 - self.ke[layer, :pos + 1, g]))
            p = rshr(exp_q30(sat32(att - att.max())), 14)             # Q16
            v = self.vc[layer, :pos + 1, g * d:(g + 1) * d] * (np.int64(1) << self.ve[layer, :pos + 1, g])[:, None]
            out[h * d:(h + 1) * d] = sat32(div_round(p @ v, int(p.sum())))
        return out

    def step(self, token: int, pos: int) -> np.ndarray:
        """One token at pos -> logits [vocab] int64 (Q16). Updates the KV cache."""
        m, t = self.meta, self.t
        if not 0 <= pos < m["seq"]:
            raise ValueError(f"position {pos} outside the context of {m['seq']}")
        emb = self.lin("emb")
        x = sat32(rshr(emb["w"][token] * emb["mult"][token], emb["shift"][token] - 16))
        half = m["head_dim"] // 2
        cos, sin = t["rope_cos"][pos][:half], t["rope_sin"][pos][:half]
        for i in range(m["layers"]):
            p = f"l{i}."
            xq, e = quant_act(rmsnorm(x, t[p + "attn_norm"], m["eps_q32"]))
            q = matvec(self.lin(p + "q_proj"), xq, e)
            k = matvec(self.lin(p + "k_proj"), xq, e)
            v = matvec(self.lin(p + "v_proj"), xq, e)
            q, k = rope(q, m["heads"], m["head_dim"], cos, sin), rope(k, m["kv_heads"], m["head_dim"], cos, sin)
            self._store_kv(k, self.kc, self.ke, i, pos)
            self._store_kv(v, self.vc, self.ve, i, pos)
            aq, e = quant_act(self._attention(i, pos, q))
            x = sat32(x + matvec(self.lin(p + "o_proj"), aq, e))
            xq, e = quant_act(rmsnorm(x, t[p + "ffn_norm"], m["eps_q32"]))
            h = silu_mul(matvec(self.lin(p + "gate_proj"), xq, e), matvec(self.lin(p + "up_proj"), xq, e))
            hq, e = quant_act(h)
            x = sat32(x + matvec(self.lin(p + "down_proj"), hq, e))
        xq, e = quant_act(rmsnorm(x, t["final_norm"], m["eps_q32"]))
        return matvec(self.lin("lm_head"), xq, e)

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray:
        logits = None
        for j, tok in enumerate(ids):
            logits = self.step(int(tok), start_pos + j)
        return logits

    def greedy(self, prompt: list[int], max_new: int) -> tuple[list[int], list[np.ndarray]]:
        """Tokens and every step's logits exactly as the firmware's main.c produces them."""
        self.reset()
        all_logits = []
        for pos, tok in enumerate(prompt):
            all_logits.append(self.step(int(tok), pos))
        out, pos = [], len(prompt)
        for i in range(max_new):
            tok = int(np.argmax(all_logits[-1]))
            out.append(tok)
            if pos >= self.meta["seq"]:
                break
            if i + 1 < max_new:
                all_logits.append(self.step(tok, pos))
            pos += 1
        return out, all_logits


class MicroSession:
    """forward(ids, start_pos) -> float logits [V] (Q16 / 65536) from the integer reference: what the
    firmware computes, evaluated on the host (the export's accuracy step and `edgeslm run`)."""

    def __init__(self, folder: Path):
        self.model = IntegerModel.from_dir(Path(folder))
        self.load_ms = 0.0

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray:
        if start_pos == 0:
            self.model.reset()
        return (self.model.forward(ids, start_pos).astype(np.float64) / 65536.0).astype(np.float32)
