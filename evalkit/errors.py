"""Exceptions that map to evalkit's exit codes (see ``evalkit.cli``)."""

from __future__ import annotations


class EvalkitError(Exception):
    """Base class of evalkit's own errors."""


class InputError(EvalkitError):
    """Bad input or usage: a config key, a data file, a model interface.

    The message is one line that names the file (and line or key) and what is wrong.
    The command line turns it into exit code 2.
    """
