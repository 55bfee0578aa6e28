"""The A1111 prompt language. Everything here but `encode.py` and `embeddings` loading is pure Python (no torch)."""
