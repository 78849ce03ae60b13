"""Who holds a lease, whether that process still lives, and the heartbeat that keeps a live run's leases.

A lease names the run, PID, host name and *host id* of its holder and carries an expiry on the
database's clock. The holder renews it (and its run row) every third of the lease time from a daemon
thread with its own connection, so a run blocked in a long warehouse statement keeps its leases.

Another run takes a lease over when:
- it expired: the holder stopped renewing it (killed, frozen, its host gone), whatever host or PID it
  had: a container's PID 1, another machine, a process whose PID was reused;
- or the holder ran in the same PID namespace of the same boot (same host id) and its PID is gone: a
  local kill -9 is reclaimed at once instead of after the expiry.
The host id (boot id + PID namespace) is what makes the PID check safe: two containers with the same
host name, or one restarted, never mistake each other's PIDs for their own.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

DEFAULT_TTL = 60.0  # seconds a lease lives without a heartbeat (state: {lease_ttl: ...} in sqlassets.yml)
MIN_TTL = 1.0


@lru_cache(maxsize=1)
def host_id() -> str:
    """This process's boot and PID namespace: equal only where our PIDs mean the same processes."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path, encoding="ascii") as fh:
                parts.append(fh.read().strip())
        except OSError:
            pass
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return "/".join(parts)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    # A zombie (killed, not yet reaped by its parent) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def holder_gone(holder: dict[str, Any], now: float, me_host: str) -> str | None:
    """Why a lease (or running run) row's holder no longer counts, or None while it may be alive."""
    expires = holder.get("expires_at")
    if expires is not None and expires < now:
        return f"its lease expired {now - expires:.0f} s ago"
    hid = holder.get("host_id")
    same_ns = hid == host_id() if hid is not None else holder.get("host") == me_host
    if same_ns and holder.get("pid") is not None and not pid_alive(int(holder["pid"])):
        return f"its process {holder['pid']} is gone"
    return None


class Heartbeat(threading.Thread):
    """Renews one run's row and leases every ttl/3 on a connection of its own until stopped."""

    def __init__(self, renew: Callable[[], None], ttl: float, on_error: Callable[[BaseException], None]
                 ) -> None:
        super().__init__(name="sqlassets-heartbeat", daemon=True)
        self._renew = renew
        self.interval = max(ttl / 3.0, 0.2)
        self._stop_event = threading.Event()
        self._on_error = on_error

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self._renew()
            except Exception as exc:  # the next beat retries; the lease check at write time decides
                self._on_error(exc)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)
