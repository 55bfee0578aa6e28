"""Generation metadata: A1111 infotext and where images keep it. Pure Python (+ Pillow)."""
