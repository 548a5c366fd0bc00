"""Errors of the VMM (userspace): anything a user's input or a guest's device use can cause."""


class VmmError(Exception):
    """Base of every VMM error; the CLI prints its message as one line."""
