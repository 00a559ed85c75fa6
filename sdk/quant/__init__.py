"""Quantization recipes as data (recipes/*.json) and their application with torchao.

Pipeline: name or path -> QuantRecipe (validated) -> apply_recipe(model) mutates linears/embeddings in place.
"""
from edgeslm.quant.recipe import RECIPES, QuantRecipe, load_recipe  # noqa: F401
from edgeslm.quant.apply import apply_recipe  # noqa: F401
