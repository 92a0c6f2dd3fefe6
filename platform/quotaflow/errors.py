"""The base of every error Quotaflow shows to a person (CLI message, error page)."""


class QuotaflowError(Exception):
    """An error whose message a non-programmer can act on; never shown with a traceback."""

    exit_code = 1
