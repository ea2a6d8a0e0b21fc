"""wrk, the external HTTP load generator of the concurrent HTTP rows (Debian package `wrk`,
installed by scripts/setup-dev.sh): a real client nobody here wrote, in C, so it costs a
fraction of what the Python client does and the server, not the client, is measured.

Every request POSTs one event (or a batch of `per_request`) with the bench's bearer token;
the Lua script builds the bodies and prints wrk's summary as one JSON line at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.godel_side import ADMIN_TOKEN, EVENT_TYPE

_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local per = %(per)d
local n = 0
local function event()
  n = n + 1
  return '{"type":"%(type)s","payload":{"n":' .. n .. '}}'
end
request = function()
  if per == 1 then
    return wrk.format(nil, nil, nil, event())
  end
  local parts = {}
  for k = 1, per do parts[k] = event() end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"socket_errors":%%d,' ..
    '"latency_mean_us":%%.1f,"latency_p99_us":%%d,"latency_max_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency.mean, latency:percentile(99), latency.max))
end
"""


class WrkUnavailable(RuntimeError):
    """wrk is not installed (scripts/setup-dev.sh installs it)."""


@dataclass(frozen=True)
class WrkRun:
    """wrk's summary of one run. wrk counts a request once its answer arrived; `non_2xx`
    are answers that were not 2xx/3xx, `socket_errors` connects, reads, writes, timeouts."""

    connections: int
    per_request: int
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    latency_mean_s: float
    latency_p99_s: float
    latency_max_s: float

    @property
    def failed(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def accepted(self) -> int:
        """Events acknowledged (2xx) within the run."""
        return (self.requests - self.non_2xx) * self.per_request

    @property
    def rate(self) -> float:
        return self.accepted / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "accepted": self.accepted, "rate": self.rate}


def available() -> bool:
    return shutil.which("wrk") is not None


def script(per_request: int, directory: Path) -> Path:
    path = directory / f"post-{per_request}.lua"
    if not path.exists():
        text = _SCRIPT % {"token": ADMIN_TOKEN, "per": per_request, "type": EVENT_TYPE}
        path.write_text(text)
    return path


@dataclass(frozen=True)
class Started:
    proc: subprocess.Popen[str]
    connections: int
    per_request: int


def start(url: str, connections: int, duration_s: float, per_request: int) -> Started:
    """Start wrk against `url` (POST); `finish` waits for it and reads its summary."""
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkUnavailable("wrk is not installed (scripts/setup-dev.sh installs it)")
    lua = script(per_request, Path(tempfile.gettempdir()))
    argv = [
        binary,
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        url,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Started(proc, connections, per_request)


def summary(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    """Wait for wrk and read the JSON line its Lua `done` hook printed last."""
    out, _ = proc.communicate(timeout=timeout_s)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk exited {proc.returncode}: {out[-600:]}")
    found: dict[str, Any] = json.loads(lines[-1])
    return found


def finish(started: Started, timeout_s: float = 120) -> WrkRun:
    s = summary(started.proc, timeout_s)
    return WrkRun(
        connections=started.connections,
        per_request=started.per_request,
        requests=int(s["requests"]),
        duration_s=s["duration_us"] / 1e6,
        non_2xx=int(s["non_2xx"]),
        socket_errors=int(s["socket_errors"]),
        latency_mean_s=s["latency_mean_us"] / 1e6,
        latency_p99_s=s["latency_p99_us"] / 1e6,
        latency_max_s=s["latency_max_us"] / 1e6,
    )


def run(url: str, connections: int, duration_s: float, per_request: int = 1) -> WrkRun:
    return finish(start(url, connections, duration_s, per_request))
