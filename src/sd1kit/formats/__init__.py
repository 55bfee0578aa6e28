"""Bytes <-> tensors and key spellings. No nn.Module lives here."""
