"""The package version, below every module that reports it (the server, OpenAPI)."""

__version__ = "0.1.0"
