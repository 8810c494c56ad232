"""The one base class of every error a user can cause and fix.

A `UserError` means bad input: a bad config value, a missing or malformed file, data that
cannot feed the model, a model reference that names nothing. The command line prints
these as `error: ...` on stderr and exits with status 2; anything else is a bug and keeps
its traceback. Subclasses say where the problem lies (config, dataset, checkpoint, ...).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can correct; the message names the file or field and the problem."""
