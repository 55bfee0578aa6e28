"""Hostile pictures: cases for sd1kit.dev.hostile (see its docstring)."""

from __future__ import annotations

from sd1kit.dev.hostile import HostileCase

CASES: list[HostileCase] = []
