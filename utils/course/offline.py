"""The offline guard: make any attempt to open a network connection fail loudly.

The course never downloads at run time. The unit tests install this guard for their whole session
(``tests/conftest.py``) and ``make test`` installs it in every notebook kernel that nbval starts
(through the IPython start-up file in ``tests/ipython/``), so a cell that tries to fetch weights or
data fails with a clear message instead of hanging or silently succeeding on a networked laptop.
Connections to this machine itself (loopback, Unix sockets: the Jupyter kernel's own channels) stay
allowed.
"""

from __future__ import annotations

import socket

__all__ = ["install_network_guard", "remove_network_guard", "NetworkAccessError"]

_ORIGINAL = {"connect": socket.socket.connect, "connect_ex": socket.socket.connect_ex}


class NetworkAccessError(RuntimeError):
    """Raised when code tries to reach another machine while the offline guard is on."""


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    host = host.decode() if isinstance(host, bytes) else str(host)
    return host in ("localhost", "::1", "") or host.startswith("127.")


def _guarded(name: str):
    real = _ORIGINAL[name]

    def connect(self, address):
        if not _is_local(address):
            raise NetworkAccessError(
                f"Network access attempted (to {address!r}). The course must run offline: load "
                "weights and data from installed packages and data/, never download at run time."
            )
        return real(self, address)

    connect.__name__ = name
    return connect


def install_network_guard() -> None:
    """Refuse every connection to a non-loopback address until :func:`remove_network_guard`."""
    socket.socket.connect = _guarded("connect")
    socket.socket.connect_ex = _guarded("connect_ex")


def remove_network_guard() -> None:
    """Restore normal networking."""
    socket.socket.connect = _ORIGINAL["connect"]
    socket.socket.connect_ex = _ORIGINAL["connect_ex"]
