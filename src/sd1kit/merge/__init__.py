"""Checkpoint merging: methods over tensors, SD1 block weights, recipes, and the streaming merger."""
