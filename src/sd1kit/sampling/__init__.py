"""Sampling: schedules, denoisers (eps / v, CFG), samplers and their noise, under A1111's names."""
