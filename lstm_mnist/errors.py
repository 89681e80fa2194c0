"""The one exception type the command-line scripts turn into a one-line message."""


class UserError(Exception):
    """A problem the user can fix (bad flag, bad file, bad checkpoint); its message says what.

    The scripts print it as one line, `<script>: <kind>: <message>`, and exit with `exit_status`.
    """

    kind = "error"
    exit_status = 2
