"""The SD1 anime family tree as data: models, lineage, files and hashes, settings; lookup, rendering, advice."""
