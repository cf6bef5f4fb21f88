"""Where the control plane listens and whether it needs a token, decided before anything moves.

``[HOST:]PORT`` (``bbflow run --serve``, else ``[serve] listen``): the host
defaults to the loopback address. Any other address needs a token, read from
the environment variable named by ``[serve] token_env``; without one the run
stops with a usage error before it serves or moves anything. This module
needs none of the web stack, so the rule is checked even without the extra.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

import attrs

from bbflow.project import ServeConfig
from bbflow.project_schema import LISTEN, listen_address

LOOPBACK_NAMES = ("localhost",)


class ServeError(Exception):
    """A control plane that cannot be served as configured (exit status 2)."""


@attrs.frozen
class ServeSettings:
    host: str
    port: int
    token: str | None = None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_listen(text: str, what: str = "--serve") -> tuple[str, int]:
    """``"8350"``, ``"0.0.0.0:8350"`` or ``"[::1]:8350"`` as (host, port) (the same rule as ``bbflow check``'s)."""
    address = listen_address(text)
    if address is None:
        raise ServeError(f"{what} {text!r}: expected {LISTEN}")
    return address


def serve_settings(
    config: ServeConfig, listen: str | None, environ: Mapping[str, str] = os.environ
) -> ServeSettings | None:
    """The settings for this run, or ``None`` when nothing is to be served; raises ``ServeError``."""
    text = listen if listen is not None else config.listen
    if text is None:
        return None
    host, port = parse_listen(text, "--serve" if listen is not None else "[serve] listen")
    token = None
    if config.token_env is not None:
        token = environ.get(config.token_env) or None
        if token is None and not is_loopback(host):
            raise ServeError(f"--serve {host}:{port}: [serve] token_env names ${config.token_env}, which is not set")
    if token is None and not is_loopback(host):
        raise ServeError(
            f"--serve {host}:{port}: only the loopback address may be served without a token; "
            'set [serve] token_env = "BBFLOW_TOKEN" in bbflow.toml and export BBFLOW_TOKEN'
        )
    return ServeSettings(host, port, token)
