"""bbflow: a checked language and a supervised asyncio runtime for robot behaviour."""

__version__ = "0.1.0"
