"""Structured logging into the host's log, tagged plugin@version (always granted; the
host caps each line and the lines per call). ``print`` also reaches the host log, as the
plugin's stdout."""

from wit_world.imports import log as _log

Level = _log.Level


def at(level: Level, message: str) -> None:
    """Logs ``message`` at ``level``."""
    _log.log(level, message)


def debug(message: str) -> None:
    _log.log(Level.DEBUG, message)


def info(message: str) -> None:
    _log.log(Level.INFO, message)


def warn(message: str) -> None:
    _log.log(Level.WARN, message)


def error(message: str) -> None:
    _log.log(Level.ERROR, message)
