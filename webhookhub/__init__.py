"""webhookhub: signed, retried, recorded webhook delivery for Django."""

__version__ = "0.1.0"
