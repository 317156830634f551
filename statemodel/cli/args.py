"""Argument types and the error line every subcommand shares.

argparse calls the types, so a bad value is a usage error (exit 2, ``statemodel CMD: error:
…``) before anything starts; ``error()`` prints run-time errors in the same form.
"""

from __future__ import annotations

import argparse
import sys


def error(command: str, message: str) -> int:
    """Print ``statemodel COMMAND: error: MESSAGE`` (argparse's own form) and return 2."""
    print(f"statemodel {command}: error: {message}", file=sys.stderr, flush=True)
    return 2


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _finite(text: str, expected: str, unit: str, zero: bool) -> float:
    """A finite float, more than 0 (or 0 or more with ``zero``); nan and inf are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (0 <= value if zero else 0 < value) or value == float("inf"):
        least = "0 or more" if zero else "more than 0"
        raise argparse.ArgumentTypeError(f"must be {least}{unit} (and finite), got {text}")
    return value


def positive_float(text: str) -> float:
    return _finite(text, "seconds", " seconds", zero=False)


def seconds(text: str) -> float:
    """Seconds, 0 allowed (e.g. a budget of 0: do none of it)."""
    return _finite(text, "seconds", " seconds", zero=True)


def fraction(text: str) -> float:
    return _finite(text, "a number", "", zero=True)


def seed(text: str) -> int:
    """A whole number, 0 or more: Python's (and so Hypothesis') seeding takes an int's absolute
    value, so ``--seed -5`` silently re-ran ``--seed 5``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value} (Python's seeding takes "
                                         f"the absolute value: it would repeat seed {-value})")
    return value


def nonempty(text: str) -> str:
    """A path or URL: an empty one (an unset shell variable) would silently mean "none"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path or URL, got an empty string")
    return text


def host(text: str) -> str:
    """A host name or address to bind; empty is refused (it failed later as ":0: Name or service not known")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a host name or address (e.g. 127.0.0.1 or ::1), got an empty string")
    return text.strip("[]")


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets (``ws://[::1]:8765/``)."""
    return f"[{host}]" if ":" in host else host


def port(text: str) -> int:
    """A TCP port, 0-65535 (0 = any free port)."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0-65535 (0 = any free port), got {text!r}")
    return int(text)


def hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6), port 0-65535."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 0-65535 (e.g. 127.0.0.1:9000), got {text!r}")
    return host, int(port_text)


def mutant_names(text: str) -> list[str]:
    """One or more names (comma-separated), checked later by the machine, whose mutants they
    are: an empty value (``--mutant ''``, ``--mutant ,``) switched nothing on, silently."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a mutant name (see `statemodel mutants --list`), got {text!r}")
    return names


def mutant(text: str) -> list[str]:
    """One or more built-in mutant names (comma-separated); unknown names are refused here."""
    from statemodel.stream.mutants import MUTANTS

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MUTANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown mutant(s) {', '.join(unknown) or repr(text)}; known: {', '.join(sorted(MUTANTS))}")
    return names


def flatten(values: list) -> list[str]:
    """``--mutant a,b --mutant c`` -> sorted unique names."""
    out: set[str] = set()
    for v in values:
        out.update([v] if isinstance(v, str) else v)
    return sorted(out)
