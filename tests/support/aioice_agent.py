"""An aioice ICE agent that speaks floe's JSON-lines protocol on stdin/stdout.

stdout, one JSON object a line:
    {"ufrag": "...", "pwd": "...", "role": "controlling"}      our description, first
    {"candidate": "<RFC 8839 candidate-attribute value>"}        one per local candidate
    {"end-of-candidates": true}
    {"event": "nominated", "local": "<candidate>", "remote": "<candidate>"}
    {"event": "data", "data": "<text>"}                          each datagram received
    {"event": "failed", "reason": "..."}                         then exit status 1

stdin: the remote's description, candidate and end-of-candidates lines, in any order and
at any time (trickle). Other lines (for example the remote's events) are ignored.

With --send TEXT, TEXT is sent once connected (on every component, with --components)
and again every 0.5 s until something has been received on every component; the agent
exits 0 once it has both sent and received. Without --send, it
exits 0 once connected and stdin is closed. Anything else by --timeout is a failure.

Gathering is loopback only (INTEROP.md): host candidates come from 127.0.0.1 alone.
Logs go to stderr (--verbose for aioice's debug log).
"""

import argparse
import asyncio
import json
import logging
import sys
import time

import aioice
import aioice.ice

# Loopback only: tests never send to the machine's other addresses (INTEROP.md).
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

RESEND_INTERVAL = 0.5
LINGER = 1.0


def emit(obj):
    print(json.dumps(obj), flush=True)


def host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return (host.strip("[]"), int(port))


def parse_candidate(text):
    text = text.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:"):]
    return aioice.Candidate.from_sdp(text)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--controlling", action="store_true")
    role.add_argument("--controlled", action="store_true")
    p.add_argument("--stun", type=host_port, metavar="HOST:PORT")
    p.add_argument("--turn", type=host_port, metavar="HOST:PORT")
    p.add_argument("--turn-tcp", action="store_true", help="reach the TURN server over TCP")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--relay-only", action="store_true")
    p.add_argument("--send", metavar="TEXT")
    p.add_argument("--components", type=int, default=1, help="components (2: RTP and RTCP)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    if args.relay_only and not args.turn:
        p.error("--relay-only needs --turn")
    return args


class Agent:
    def __init__(self, args):
        self.args = args
        self.conn = aioice.Connection(
            ice_controlling=args.controlling,
            stun_server=args.stun,
            turn_server=args.turn,
            turn_username=args.user,
            turn_password=args.password,
            turn_transport="tcp" if args.turn_tcp else "udp",
            use_ipv6=False,
            components=args.components,
            transport_policy=(
                aioice.TransportPolicy.RELAY if args.relay_only else aioice.TransportPolicy.ALL
            ),
        )
        self.remote_credentials = asyncio.Event()
        self.stdin_closed = asyncio.Event()
        self.received = asyncio.Event()
        self.received_on = set()  # the components data arrived on
        self.pending = []  # remote candidates (or None) that came before the description

    async def gather(self):
        await self.conn.gather_candidates()
        candidates = self.conn.local_candidates
        if self.args.turn and not any(c.type == "relay" for c in candidates):
            raise RuntimeError(f"no relayed candidate from the TURN server {self.args.turn}")
        if not candidates:
            raise RuntimeError("no local candidates")
        emit(
            {
                "ufrag": self.conn.local_username,
                "pwd": self.conn.local_password,
                "role": "controlling" if self.args.controlling else "controlled",
            }
        )
        for c in candidates:
            emit({"candidate": c.to_sdp()})
        emit({"end-of-candidates": True})

    async def add_remote(self, candidate):
        if not self.remote_credentials.is_set():
            self.pending.append(candidate)
        else:
            await self.conn.add_remote_candidate(candidate)

    async def read_stdin(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                break
            line = line.decode().strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                logging.warning("ignoring a line that is not JSON: %r", line)
                continue
            if not isinstance(msg, dict) or "event" in msg:
                continue
            if "ufrag" in msg and "pwd" in msg:
                self.conn.remote_username = msg["ufrag"]
                self.conn.remote_password = msg["pwd"]
                if not self.remote_credentials.is_set():
                    self.remote_credentials.set()
                    for candidate in self.pending:
                        await self.conn.add_remote_candidate(candidate)
                    self.pending.clear()
            elif "candidate" in msg:
                await self.add_remote(parse_candidate(msg["candidate"]))
            elif msg.get("end-of-candidates"):
                await self.add_remote(None)
        self.stdin_closed.set()

    async def receive(self):
        while True:
            data, component = await self.conn.recvfrom()
            emit({"event": "data", "component": component, "data": data.decode(errors="replace")})
            self.received_on.add(component)
            if len(self.received_on) >= self.args.components:
                self.received.set()

    async def send_all(self, payload):
        for component in range(1, self.args.components + 1):
            await self.conn.sendto(payload, component)

    async def run(self):
        await self.gather()
        stdin_task = asyncio.create_task(self.read_stdin())
        await self.remote_credentials.wait()
        await self.conn.connect()
        for component, pair in sorted(self.conn._nominated.items()):
            emit(
                {
                    "event": "nominated",
                    "component": component,
                    "local": pair.local_candidate.to_sdp(),
                    "remote": pair.remote_candidate.to_sdp(),
                }
            )
        recv_task = asyncio.create_task(self.receive())
        if self.args.send is not None:
            payload = self.args.send.encode()
            while not self.received.is_set():
                await self.send_all(payload)
                try:
                    await asyncio.wait_for(self.received.wait(), RESEND_INTERVAL)
                except asyncio.TimeoutError:
                    pass
            # Stay a moment, so the remote's checks and our last copies are answered.
            await self.send_all(payload)
            await asyncio.sleep(LINGER)
        else:
            await self.stdin_closed.wait()
        recv_task.cancel()
        stdin_task.cancel()


async def main():
    args = parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    agent = Agent(args)
    start = time.monotonic()
    status = 0
    try:
        await asyncio.wait_for(agent.run(), args.timeout)
    except asyncio.TimeoutError:
        emit({"event": "failed", "reason": f"timeout after {time.monotonic() - start:.1f} s"})
        status = 1
    except Exception as exc:  # noqa: BLE001 - report any failure as an event
        emit({"event": "failed", "reason": f"{type(exc).__name__}: {exc}"})
        status = 1
    try:
        await asyncio.wait_for(agent.conn.close(), 2.0)
    except Exception:  # noqa: BLE001 - closing is best effort
        pass
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
