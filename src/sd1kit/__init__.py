"""sd1kit: Stable Diffusion 1 family checkpoints, identified, loaded and run safely."""

__version__ = "0.1.0"
