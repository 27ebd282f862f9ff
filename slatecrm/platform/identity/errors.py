"""The errors of users and passwords: each message is meant for the person who typed the
command or filled the form, and never holds a password."""

from __future__ import annotations


class IdentityError(Exception):
    """A change to a user that was refused; nothing was changed."""
