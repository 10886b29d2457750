"""Errors that the command line turns into one-line messages and exit status 2."""


class UserError(Exception):
    """Bad input from the user (suite file, plugin name, model path): reported, never a traceback."""
