"""ctypes binding of the C API (runtime/include/edgeslm.h): `NativeModel(bundle_dir, lib_path)`.

Mirrors the header one to one; struct layouts below must match it (the header's struct_size fields
let the library check them). Every non-OK status raises NativeError carrying the status name and the
library's one-line message. Logits come back as numpy float32 copies [V].
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Callable

import numpy as np

from edgeslm.errors import EdgeSLMError

STATUS = {0: "EDGESLM_OK", 1: "EDGESLM_ERR_INVALID_ARGUMENT", 2: "EDGESLM_ERR_NOT_FOUND", 3: "EDGESLM_ERR_LOAD",
          4: "EDGESLM_ERR_CONTEXT_FULL", 5: "EDGESLM_ERR_RUNTIME", 6: "EDGESLM_ERR_STATE",
          7: "EDGESLM_ERR_NO_MEMORY"}
STOP_REASONS = {0: "none", 1: "max_tokens", 2: "eos", 3: "callback", 4: "context"}


class NativeError(EdgeSLMError):
    """A C API call failed: `.status` is the edgeslm_status name, str() the library's message."""

    def __init__(self, status: int, message: str, *, path=None):
        self.status = STATUS.get(status, f"status {status}")
        super().__init__(f"{self.status}: {message}", path=path)


class Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("threads", ctypes.c_int32)]


class GenConfig(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("max_new_tokens", ctypes.c_int32),
                ("temperature", ctypes.c_float), ("top_p", ctypes.c_float), ("seed", ctypes.c_uint64),
                ("stop_at_eos", ctypes.c_int32)]


class Stats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32)] + [
        (name, ctypes.c_double) for name in ("model_load_ms", "ttft_ms", "prefill_ms", "prefill_tokens_per_s",
                                             "decode_ms", "decode_tokens_per_s")] + [
        (name, ctypes.c_int64) for name in ("prompt_tokens", "generated_tokens", "position", "planned_arena_bytes",
                                            "peak_rss_bytes", "peak_heap_bytes")] + [
        ("stop_reason", ctypes.c_int32), ("threads", ctypes.c_int32), ("weights_huge_page_bytes", ctypes.c_int64)]


TokenCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_void_p)
TextCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_I64P = ctypes.POINTER(ctypes.c_int64)
_LIBS: dict[str, ctypes.CDLL] = {}


def load_library(lib_path: str | Path) -> ctypes.CDLL:
    """libedgeslm.so (or the deployable folder holding it), with argtypes declared. Cached per path."""
    path = Path(lib_path)
    if path.is_dir():
        path = path / "libedgeslm.so"
    key = str(path.resolve())
    if key in _LIBS:
        return _LIBS[key]
    if not path.is_file():
        raise EdgeSLMError("native library not found", path=path, fix="build it with edgeslm.native.build_runner()")
    lib = ctypes.CDLL(key)
    m, st = ctypes.c_void_p, ctypes.c_int
    sigs = {
        "edgeslm_version": (ctypes.c_char_p, []),
        "edgeslm_status_string": (ctypes.c_char_p, [st]),
        "edgeslm_options_init": (None, [ctypes.POINTER(Options)]),
        "edgeslm_gen_config_init": (None, [ctypes.POINTER(GenConfig)]),
        "edgeslm_open": (st, [ctypes.c_char_p, ctypes.POINTER(Options), ctypes.POINTER(m)]),
        "edgeslm_close": (None, [m]),
        "edgeslm_last_error": (ctypes.c_char_p, [m]),
        "edgeslm_vocab_size": (ctypes.c_int64, [m]),
        "edgeslm_max_seq_len": (ctypes.c_int64, [m]),
        "edgeslm_bos_id": (ctypes.c_int64, [m]),
        "edgeslm_eos_ids": (ctypes.c_size_t, [m, _I64P, ctypes.c_size_t]),
        "edgeslm_backend_name": (ctypes.c_char_p, [m]),
        "edgeslm_prefill": (st, [m, _I64P, ctypes.c_size_t]),
        "edgeslm_decode_step": (st, [m, ctypes.c_int64, ctypes.POINTER(GenConfig), _I64P]),
        "edgeslm_sample": (st, [m, ctypes.POINTER(GenConfig), _I64P]),
        "edgeslm_get_logits": (st, [m, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                                    ctypes.POINTER(ctypes.c_size_t)]),
        "edgeslm_reset": (st, [m]),
        "edgeslm_generate": (st, [m, _I64P, ctypes.c_size_t, ctypes.POINTER(GenConfig), TokenCallback,
                                  ctypes.c_void_p]),
        "edgeslm_get_stats": (st, [m, ctypes.POINTER(Stats)]),
    }
    sigs.update(_text_sigs())
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    _LIBS[key] = lib
    return lib


def _text_sigs() -> dict:
    """The text section of edgeslm.h (C++ tokenizer, edgeslm_generate_text)."""
    t, m, st, sz = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    return {
        "edgeslm_tokenizer_open": (st, [ctypes.c_char_p, ctypes.POINTER(t)]),
        "edgeslm_tokenizer_close": (None, [t]),
        "edgeslm_tokenizer_last_error": (ctypes.c_char_p, [t]),
        "edgeslm_tokenizer_encode": (st, [t, ctypes.c_char_p, sz, ctypes.c_int, _I64P, sz, ctypes.POINTER(sz)]),
        "edgeslm_tokenizer_decode": (st, [t, _I64P, sz, ctypes.c_int, ctypes.c_char_p, sz, ctypes.POINTER(sz)]),
        "edgeslm_tokenizer_vocab_size": (ctypes.c_int64, [t]),
        "edgeslm_get_tokenizer": (t, [m]),
        "edgeslm_generate_text": (st, [m, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(GenConfig), TextCallback,
                                       TokenCallback, ctypes.c_void_p]),
    }


class NativeTokenizer:
    """The runtime's C++ tokenizer over a tokenizer.json (or, with `handle`, the one a model owns).

    encode(text: str | bytes) -> ids; bytes go in unchanged (invalid UTF-8 is the library's to handle).
    decode(ids) -> str (the library's UTF-8, decoded strictly: it must be valid)."""

    def __init__(self, path: str | Path | None, lib_path: str | Path, *, handle=None, owner=None):
        self._lib = load_library(lib_path)
        self._owned = handle is None
        self._owner = owner   # keeps the owning NativeModel alive
        if handle is None:
            out = ctypes.c_void_p()
            status = self._lib.edgeslm_tokenizer_open(str(path).encode(), ctypes.byref(out))
            if status != 0:
                raise NativeError(status, self._lib.edgeslm_last_error(None).decode(), path=path)
            handle = out
        self._t = handle

    def close(self) -> None:
        if getattr(self, "_t", None) and self._owned:
            self._lib.edgeslm_tokenizer_close(self._t)
        self._t = None

    def __enter__(self) -> "NativeTokenizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def _check(self, status: int) -> None:
        if status != 0:
            raise NativeError(status, self._lib.edgeslm_tokenizer_last_error(self._t).decode())

    @property
    def vocab_size(self) -> int:
        return self._lib.edgeslm_tokenizer_vocab_size(self._t)

    def encode(self, text: str | bytes, add_special: bool = False) -> list[int]:
        data = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else bytes(text)
        n = ctypes.c_size_t()
        self._check(self._lib.edgeslm_tokenizer_encode(self._t, data, len(data), int(add_special), None, 0,
                                                       ctypes.byref(n)))
        buf = (ctypes.c_int64 * max(1, n.value))()
        self._check(self._lib.edgeslm_tokenizer_encode(self._t, data, len(data), int(add_special), buf, n.value,
                                                       ctypes.byref(n)))
        return list(buf[:n.value])

    def decode(self, ids, skip_special: bool = False) -> str:
        arr, count = _ids(ids)
        n = ctypes.c_size_t()
        self._check(self._lib.edgeslm_tokenizer_decode(self._t, arr, count, int(skip_special), None, 0,
                                                       ctypes.byref(n)))
        buf = ctypes.create_string_buffer(n.value + 1)
        self._check(self._lib.edgeslm_tokenizer_decode(self._t, arr, count, int(skip_special), buf, n.value + 1,
                                                       ctypes.byref(n)))
        return buf.raw[:n.value].decode("utf-8")


def _ids(ids) -> tuple[ctypes.Array, int]:
    ids = [int(t) for t in ids]
    return (ctypes.c_int64 * max(1, len(ids)))(*ids), len(ids)


class NativeModel:
    """One opened bundle. Not thread-safe (one model per thread); close() or use as a context manager."""

    def __init__(self, bundle_dir: str | Path, lib_path: str | Path, *, threads: int = 0):
        self._lib = load_library(lib_path)
        opts = Options()
        self._lib.edgeslm_options_init(ctypes.byref(opts))
        opts.threads = int(threads)
        handle = ctypes.c_void_p()
        status = self._lib.edgeslm_open(str(bundle_dir).encode(), ctypes.byref(opts), ctypes.byref(handle))
        if status != 0:
            raise NativeError(status, self._lib.edgeslm_last_error(None).decode())
        self._m = handle

    # ---- lifetime ----
    def close(self) -> None:
        if getattr(self, "_m", None):
            self._lib.edgeslm_close(self._m)
            self._m = None

    def __enter__(self) -> "NativeModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def _check(self, status: int) -> None:
        if status != 0:
            raise NativeError(status, self._lib.edgeslm_last_error(self._m).decode())

    # ---- metadata ----
    @property
    def vocab_size(self) -> int:
        return self._lib.edgeslm_vocab_size(self._m)

    @property
    def max_seq_len(self) -> int:
        return self._lib.edgeslm_max_seq_len(self._m)

    @property
    def bos_id(self) -> int:
        return self._lib.edgeslm_bos_id(self._m)

    @property
    def eos_ids(self) -> list[int]:
        n = self._lib.edgeslm_eos_ids(self._m, None, 0)
        buf = (ctypes.c_int64 * max(1, n))()
        self._lib.edgeslm_eos_ids(self._m, buf, n)
        return list(buf[:n])

    @property
    def backend(self) -> str:
        return self._lib.edgeslm_backend_name(self._m).decode()

    # ---- stepwise ----
    def prefill(self, ids) -> None:
        arr, n = _ids(ids)
        self._check(self._lib.edgeslm_prefill(self._m, arr, n))

    def decode_step(self, token: int) -> None:
        self._check(self._lib.edgeslm_decode_step(self._m, int(token), None, None))

    def forward(self, ids, start_pos: int) -> np.ndarray:
        """Same contract as ExecuTorchSession.forward: logits [V] of the last of `ids` placed at start_pos.
        start_pos must be the current position or 0 (which resets)."""
        position = self.stats()["position"]
        if start_pos == 0:
            self.reset()
        elif start_pos != position:
            raise ValueError(f"start_pos {start_pos} != current position {position}")
        self.prefill(ids)
        return self.logits()

    def logits(self) -> np.ndarray:
        ptr, n = ctypes.POINTER(ctypes.c_float)(), ctypes.c_size_t()
        self._check(self._lib.edgeslm_get_logits(self._m, ctypes.byref(ptr), ctypes.byref(n)))
        return np.ctypeslib.as_array(ptr, shape=(n.value,)).copy()

    def sample(self, *, temperature: float = 0.0, top_p: float = 1.0) -> int:
        cfg = self._config(0, temperature, top_p, 0, True)
        out = ctypes.c_int64()
        self._check(self._lib.edgeslm_sample(self._m, ctypes.byref(cfg), ctypes.byref(out)))
        return out.value

    def reset(self) -> None:
        self._check(self._lib.edgeslm_reset(self._m))

    # ---- whole generation ----
    def generate(self, prompt, max_new_tokens: int = 32, *, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, stop_at_eos: bool = True, reset: bool = True,
                 on_token: Callable[[int], bool | None] | None = None) -> list[int]:
        """New token ids. on_token(token) returning True stops generation early."""
        if reset:
            self.reset()
        out: list[int] = []

        def cb(token, _user):
            out.append(int(token))
            return 1 if on_token is not None and on_token(int(token)) else 0

        arr, n = _ids(prompt)
        cfg = self._config(max_new_tokens, temperature, top_p, seed, stop_at_eos)
        self._check(self._lib.edgeslm_generate(self._m, arr, n, ctypes.byref(cfg), TokenCallback(cb), None))
        return out

    # ---- text (the bundle's tokenizer.json through the C++ tokenizer) ----
    @property
    def tokenizer(self) -> NativeTokenizer | None:
        handle = self._lib.edgeslm_get_tokenizer(self._m)
        return NativeTokenizer(None, self._lib._name, handle=ctypes.c_void_p(handle), owner=self) if handle else None

    def generate_text(self, prompt: str, max_new_tokens: int = 32, *, chat: bool = False, temperature: float = 0.0,
                      top_p: float = 1.0, seed: int = 0, stop_at_eos: bool = True,
                      on_text: Callable[[str], bool | None] | None = None) -> tuple[str, list[int]]:
        """(text, new token ids) of edgeslm_generate_text; on_text(piece) per streamed piece (True stops)."""
        pieces: list[bytes] = []
        tokens: list[int] = []

        def text_cb(ptr, n, _user):
            piece = ctypes.string_at(ptr, n)
            pieces.append(piece)
            return 1 if on_text is not None and on_text(piece.decode("utf-8")) else 0

        def token_cb(token, _user):
            tokens.append(int(token))
            return 0

        cfg = self._config(max_new_tokens, temperature, top_p, seed, stop_at_eos)
        self._check(self._lib.edgeslm_generate_text(self._m, prompt.encode("utf-8"), int(bool(chat)), ctypes.byref(cfg),
                                                    TextCallback(text_cb), TokenCallback(token_cb), None))
        return b"".join(pieces).decode("utf-8"), tokens

    def stats(self) -> dict:
        st = Stats()
        st.struct_size = ctypes.sizeof(Stats)
        self._check(self._lib.edgeslm_get_stats(self._m, ctypes.byref(st)))
        d = {name: getattr(st, name) for name, _ in Stats._fields_ if name != "struct_size"}
        d["stop_reason"] = STOP_REASONS.get(d["stop_reason"], str(d["stop_reason"]))
        return d

    def _config(self, max_new: int, temperature: float, top_p: float, seed: int, stop_at_eos: bool) -> GenConfig:
        cfg = GenConfig()
        self._lib.edgeslm_gen_config_init(ctypes.byref(cfg))
        cfg.max_new_tokens, cfg.temperature, cfg.top_p = int(max_new), float(temperature), float(top_p)
        cfg.seed, cfg.stop_at_eos = int(seed) & (2**64 - 1), int(bool(stop_at_eos))
        return cfg
