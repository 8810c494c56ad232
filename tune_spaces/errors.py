"""The error of a bad search space (its own module, so that every space module can raise it)."""

from __future__ import annotations

from mmrphys.errors import UserError


class SpaceError(UserError, ValueError):
    """A search space is unknown, malformed, or contains a combination the model rejects."""
