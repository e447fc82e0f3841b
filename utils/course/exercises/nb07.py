"""The self-checks of Notebook 07's exercises."""

from __future__ import annotations

__all__: list[str] = []
