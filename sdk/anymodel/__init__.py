"""Any PyTorch model (issue #10).

decoder.export_decoder_module   a module meeting the decoder contract (contract.py) -> verified .pte bundle
contract.check_decoder          one clear error naming the missing part of the contract
"""
from edgeslm.anymodel.contract import DecoderAdapter, check_decoder
from edgeslm.anymodel.decoder import export_decoder_module

__all__ = ["DecoderAdapter", "check_decoder", "export_decoder_module"]
