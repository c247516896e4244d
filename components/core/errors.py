"""The one base class of errors whose message is the whole story for the user.

Stage entry points and the CLI print such an error's message without a traceback and exit 1;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input (a file, a folder, a params key): the message names it and says what was expected."""
