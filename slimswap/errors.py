"""The one exception type users see.

Anything raised as `UserError` is the user's to fix (bad input, missing model, unwritable
output); the CLI prints its message as one line on stderr and exits with code 2. Every other
exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""
