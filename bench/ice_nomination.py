"""Time from start to PairNominated on loopback host candidates (issue 5, item 6).

Three pairings, 20 runs each (--runs), the median reported:

  floe <-> floe      two `floe ice --loopback` processes, lines crossed by this script
  floe <-> aioice    one `floe ice --loopback` process and one aioice 0.13 agent in this
                     script, in both role assignments
  aioice <-> aioice  two aioice agents in this script

What is measured, the same way for every agent: from the agent's own start (floe: the
`Start` message, sent when the remote description arrives; aioice: the call of
`Connection.connect()`) to the moment the agent has nominated its pair (floe: the
PairNominated event, reported as `elapsed_ms` in its `nominated` line; aioice: the
moment `check_complete` records the pair in `_nominated`, hooked below). For aioice the
return of `connect()` is reported too: it polls its check list every 20 ms, so it
returns up to 20 ms after the nomination.

Both agents of a run gather first, then exchange descriptions and candidates; every
agent uses 127.0.0.1 only (floe also ::1). Ta is each implementation's default: 50 ms
for floe, 20 ms for aioice.

    .venv/bin/python bench/ice_nomination.py --floe target/release/floe [--runs 20]
"""

import argparse
import asyncio
import json
import statistics
import sys
import time

import aioice
import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

_original_check_complete = aioice.Connection.check_complete


def _check_complete(self, pair):
    _original_check_complete(self, pair)
    if getattr(self, "bench_nominated_at", None) is None and self._nominated:
        self.bench_nominated_at = time.monotonic()


aioice.Connection.check_complete = _check_complete


class AioiceAgent:
    def __init__(self, controlling):
        self.conn = aioice.Connection(ice_controlling=controlling, use_ipv6=False)
        self.conn.bench_nominated_at = None
        self.role = "controlling" if controlling else "controlled"

    async def gather(self):
        await self.conn.gather_candidates()
        lines = [
            {"ufrag": self.conn.local_username, "pwd": self.conn.local_password, "role": self.role}
        ]
        lines += [{"candidate": c.to_sdp()} for c in self.conn.local_candidates]
        lines.append({"end-of-candidates": True})
        return lines

    async def take(self, lines):
        for msg in lines:
            if "ufrag" in msg:
                self.conn.remote_username = msg["ufrag"]
                self.conn.remote_password = msg["pwd"]
        for msg in lines:
            if "candidate" in msg:
                await self.conn.add_remote_candidate(aioice.Candidate.from_sdp(msg["candidate"]))
            elif msg.get("end-of-candidates"):
                await self.conn.add_remote_candidate(None)

    async def connect(self):
        """(ms to nomination, ms to connect() returning)."""
        start = time.monotonic()
        await self.conn.connect()
        done = time.monotonic()
        nominated = self.conn.bench_nominated_at or done
        return (nominated - start) * 1000, (done - start) * 1000

    async def close(self):
        await self.conn.close()


class FloeAgent:
    def __init__(self, floe, controlling, extra=()):
        self.floe = floe
        self.role = "--controlling" if controlling else "--controlled"
        self.extra = list(extra)

    async def spawn(self):
        self.proc = await asyncio.create_subprocess_exec(
            self.floe, "ice", self.role, "--loopback", "--timeout", "20", *self.extra,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def gather(self):
        lines = []
        while True:
            msg = json.loads(await self.proc.stdout.readline())
            if "event" in msg:
                continue
            lines.append(msg)
            if msg.get("end-of-candidates"):
                return lines

    async def take(self, lines):
        for msg in lines:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()

    async def nominated(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                raise RuntimeError("floe ice exited before nominating")
            msg = json.loads(line)
            if msg.get("event") == "nominated":
                return msg["elapsed_ms"]
            if msg.get("event") == "failed":
                raise RuntimeError(f"floe ice failed: {msg}")

    async def close(self):
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def run_once(kind_a, kind_b, floe, extra=()):
    """One run; agent a controls; `extra` are the floe agents' extra options.
    Returns {"a": ms, "b": ms, "a_connect": ms, ...}."""
    agents = []
    for kind, controlling in ((kind_a, True), (kind_b, False)):
        if kind == "floe":
            agent = FloeAgent(floe, controlling, extra)
            await agent.spawn()
        else:
            agent = AioiceAgent(controlling)
        agents.append(agent)
    a, b = agents
    lines_a, lines_b = await asyncio.gather(a.gather(), b.gather())
    # aioice needs the remote's credentials and candidates before connect(); floe
    # starts when the description arrives and takes candidates as they come.
    tasks = []
    for agent, lines in ((a, lines_b), (b, lines_a)):
        if isinstance(agent, AioiceAgent):
            await agent.take(lines)
    for agent, lines in ((a, lines_b), (b, lines_a)):
        if isinstance(agent, FloeAgent):
            tasks.append(agent.take(lines))
            tasks.append(agent.nominated())
        else:
            tasks.append(agent.connect())
    results = await asyncio.gather(*tasks)
    results = [r for r in results if r is not None]
    out = {}
    for name, r in zip("ab", results):
        if isinstance(r, tuple):
            out[name], out[name + "_connect"] = r
        else:
            out[name] = r
    for agent in agents:
        await agent.close()
    return out


def summary(values):
    return f"{statistics.median(values):7.1f} ms (min {min(values):.1f}, max {max(values):.1f})"


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--floe", default="target/release/floe")
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    aggressive = ["--aggressive-nomination"]
    pairings = [
        ("floe", "floe", [], ""),
        ("floe", "aioice", [], ""),
        ("aioice", "floe", [], ""),
        ("aioice", "aioice", [], ""),
        # floe at aioice's Ta, for a comparison on equal pacing.
        ("floe", "floe", ["--ta", "20"], ", floe at Ta 20 ms"),
        # aioice nominates aggressively (RFC 5245); floe can too, as an option.
        ("floe", "floe", aggressive, ", floe --aggressive-nomination"),
        ("floe", "aioice", aggressive, ", floe --aggressive-nomination"),
    ]
    print(f"median of {args.runs} runs; time from the agent's start to its nomination")
    for kind_a, kind_b, extra, note in pairings:
        runs = []
        for _ in range(args.runs):
            runs.append(await run_once(kind_a, kind_b, args.floe, extra))
        both = [max(r["a"], r["b"]) for r in runs]
        print(f"\n{kind_a} (controlling) <-> {kind_b} (controlled){note}")
        print(f"  controlling  {summary([r['a'] for r in runs])}")
        print(f"  controlled   {summary([r['b'] for r in runs])}")
        print(f"  both         {summary(both)}")
        for name, role in (("a", "controlling"), ("b", "controlled")):
            if name + "_connect" in runs[0]:
                print(f"  aioice {role} connect() returned  {summary([r[name + '_connect'] for r in runs])}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
