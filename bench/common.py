"""Shared helpers for the benchmarks: the project root on sys.path, bounded wrk runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# wrk's Lua: a body made of parts joined by a request counter (every request differs), extra
# headers, and an optional pace: each request takes the next slot of a fixed schedule, read
# from a monotonic clock through LuaJIT's FFI (wrk itself has no pacing).
WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local headers = {headers}
for name, value in pairs(headers) do wrk.headers[name] = value end
local parts = {{}}
local f = io.open("{parts}", "rb")
if f then
  parts = loadstring("return " .. f:read("*all"))()
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
local count = 0
if #parts > 0 then
  request = function()
    count = count + 1
    return wrk.format(nil, nil, nil, table.concat(parts, tostring(count)))
  end
end

local interval = {interval}
local started = nil
local sent = 0
if interval > 0 then
  delay = function()
    local now = now_ms()
    started = started or now
    sent = sent + 1
    local due = started + sent * interval
    if due > now then return due - now end
    return 0
  end
end
"""


def need_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is needed: apt-get install -y wrk")
    return path


def wrk(url: str, parts: list[str] | None = None, seconds: int = 10, connections: int = 16,
        rate: int | None = None, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Requests/s, p50/p99 latency (ms) and error counts of one bounded wrk run. `parts`:
    a POST body as pieces joined by the request's number; `rate`: requests/s to pace at."""
    with tempfile.TemporaryDirectory() as tmp:
        parts_path = Path(tmp) / "parts.lua"
        if parts is not None:
            parts_path.write_text("{" + ",".join(_lua_string(p) for p in parts) + "}")
        script = Path(tmp) / "bench.lua"
        script.write_text(WRK_SCRIPT.format(
            headers="{" + ",".join(f"[ {_lua_string(k)} ]={_lua_string(v)}"
                                   for k, v in (headers or {}).items()) + "}",
            parts=parts_path, interval=1000.0 / rate if rate else 0))
        args = [need_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                "-s", str(script), url]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "non_2xx": float(m.group(1)) if (m := re.search(r"Non-2xx.*?:\s+(\d+)", out)) else 0.0,
        "errors": float(sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)",
                                                       out))),
    }


def _lua_string(text: str) -> str:
    """A Lua long-bracket string literal holding `text` exactly."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def dump(figures: dict) -> str:
    return json.dumps(figures, indent=2, sort_keys=True)
