"""Which SD1 variant a file is, and building its runtime modules."""
