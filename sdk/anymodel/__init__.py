"""Any PyTorch model (issue #10): edgeslm.export(nn.Module, ...) lands in export_module.

export_module                   decoder contract (no example_inputs) or plain graph (example_inputs given)
decoder.export_decoder_module   a module meeting the decoder contract (contract.py) -> verified .pte bundle
contract.check_decoder          one clear error naming the missing part of the contract
"""
from __future__ import annotations

from edgeslm.anymodel.contract import DecoderAdapter, check_decoder
from edgeslm.anymodel.decoder import export_decoder_module
from edgeslm.errors import EdgeSLMError

__all__ = ["DecoderAdapter", "check_decoder", "export_decoder_module", "export_module"]


def export_module(model, *, out, backend: str = "executorch", target: str = "host", quant: str = "fp32",
                  force: bool = False, progress: bool = True, tokenizer_dir=None, example_inputs=None,
                  dynamic_shapes=None, name: str | None = None):
    if example_inputs is None:
        if backend != "executorch":
            raise EdgeSLMError(f"custom decoders export through the executorch backend only, not '{backend}'",
                               fix="pass backend='executorch' (or example_inputs for a plain graph)")
        return export_decoder_module(model, out=out, target=target, quant=quant, tokenizer_dir=tokenizer_dir,
                                     force=force, progress=progress, name=name)
    from edgeslm.anymodel.plain import export_plain
    return export_plain(model, example_inputs, out=out, backend=backend, target=target, quant=quant,
                        dynamic_shapes=dynamic_shapes, force=force, progress=progress, name=name)
