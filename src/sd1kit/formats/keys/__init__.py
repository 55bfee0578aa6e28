"""Key spellings: one table per spelling, converted to and from the canonical LDM names."""
