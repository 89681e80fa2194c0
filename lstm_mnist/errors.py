"""What the scripts say on stderr: one line per problem the user can fix, and little else."""

# Set to 1 (or pass --verbose to a script) to let TensorFlow print its own start-up and
# deprecation messages, which lstm_mnist.tf1 keeps off the terminal otherwise.
VERBOSE_VARIABLE = "LSTM_MNIST_VERBOSE"


class UserError(Exception):
    """A problem the user can fix (bad flag, bad file, bad checkpoint); its message says what.

    The scripts print it as one line, `<script>: <kind>: <message>`, and exit with `exit_status`.
    """

    kind = "error"
    exit_status = 2
