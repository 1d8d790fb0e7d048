"""Errors that mean "the user asked for something that cannot be done": shown as one line."""


class UserError(ValueError):
    """A bad input with a message that says what to change; the CLI prints it without a traceback."""
