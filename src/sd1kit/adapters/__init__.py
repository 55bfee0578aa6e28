"""LoRA and LyCORIS adapters: files, names, algorithms, run-time patches, baking and extraction."""
