"""The one exception type the command-line scripts turn into a one-line message."""


class UserError(Exception):
    """A problem the user can fix (bad flag, bad file, bad checkpoint); its message says what."""
