"""A free range of ports for MLC_SANDBOX_PORT_BASE: every stand-in's base + offset can be bound right now."""

from __future__ import annotations

import random
import socket

from mlc_sandbox.ports import OFFSETS


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base() -> int:
    """Below the kernel's ephemeral range (32768+ on Linux), so outgoing connections do not take them meanwhile."""
    for _ in range(200):
        base = random.randrange(10_000, 32_000 - max(OFFSETS.values()))
        if all(_free(base + offset) for offset in OFFSETS.values()):
            return base
    raise RuntimeError("no free range of stand-in ports found")
