"""The ``autoray`` command line. Sub-command groups live in one module each."""

from autoray.cli.main import app, main

__all__ = ["app", "main"]
