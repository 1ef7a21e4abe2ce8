"""aioice gathers a relayed candidate from a TURN server and exchanges data through it.

Two aioice agents run in this one process:
  A  relay-only (TransportPolicy.RELAY) through the TURN server at --turn, controlling;
  B  host candidates on 127.0.0.1 only (or, with --both-relay, relay-only too), controlled.
They exchange descriptions in memory, connect, and then A sends messages of several sizes
(odd ones too, to exercise ChannelData padding over TCP); B echoes each back. A message is
sent again every 0.5 s until its echo arrives. So every byte goes through A's allocation
on the server, both ways.

stdout, one JSON object a line:
    {"event": "relayed", "candidate": "<candidate>"}             A's relayed candidate
    {"event": "nominated", "agent": "a"|"b", "local": "...", "remote": "..."}
    {"event": "echo", "size": N}                                  one per message, in order
    {"event": "ok", "relayed": "HOST:PORT", "messages": N}        then exit status 0
    {"event": "failed", "reason": "..."}                         then exit status 1
"""

import argparse
import asyncio
import json
import logging
import sys

import aioice
import aioice.ice

# Loopback only: tests never send to the machine's other addresses (INTEROP.md).
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

SIZES = [1, 5, 7, 100, 333, 1000, 1203]
RESEND_INTERVAL = 0.5


def emit(obj):
    print(json.dumps(obj), flush=True)


def host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return (host.strip("[]"), int(port))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--turn", type=host_port, metavar="HOST:PORT", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--turn-tcp", action="store_true", help="reach the TURN server over TCP")
    p.add_argument("--both-relay", action="store_true", help="B is relay-only as well")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args()


def relay_agent(args, controlling):
    return aioice.Connection(
        ice_controlling=controlling,
        turn_server=args.turn,
        turn_username=args.user,
        turn_password=args.password,
        turn_transport="tcp" if args.turn_tcp else "udp",
        use_ipv6=False,
        transport_policy=aioice.TransportPolicy.RELAY,
    )


def nominated(agent_name, conn):
    pair = conn._nominated[1]
    emit(
        {
            "event": "nominated",
            "agent": agent_name,
            "local": pair.local_candidate.to_sdp(),
            "remote": pair.remote_candidate.to_sdp(),
        }
    )
    return pair


async def echo(conn):
    while True:
        data = await conn.recv()
        await conn.send(data)


async def run(args, a, b):
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    relayed = [c for c in a.local_candidates if c.type == "relay"]
    if not relayed:
        raise RuntimeError(f"no relayed candidate from the TURN server {args.turn}")
    emit({"event": "relayed", "candidate": relayed[0].to_sdp()})
    if args.both_relay and not any(c.type == "relay" for c in b.local_candidates):
        raise RuntimeError(f"no relayed candidate for B from the TURN server {args.turn}")

    for local, remote in ((a, b), (b, a)):
        for c in remote.local_candidates:
            await local.add_remote_candidate(c)
        await local.add_remote_candidate(None)
        local.remote_username = remote.local_username
        local.remote_password = remote.local_password

    await asyncio.gather(a.connect(), b.connect())
    pair = nominated("a", a)
    nominated("b", b)
    if pair.local_candidate.type != "relay":
        raise RuntimeError(f"A's nominated pair is not relayed: {pair.local_candidate.to_sdp()}")

    echo_task = asyncio.create_task(echo(b))
    try:
        for i, size in enumerate(SIZES):
            payload = bytes(48 + (i + k) % 10 for k in range(size))
            while True:
                await a.send(payload)
                try:
                    while True:
                        got = await asyncio.wait_for(a.recv(), RESEND_INTERVAL)
                        if got == payload:
                            break
                    break
                except asyncio.TimeoutError:
                    continue
            emit({"event": "echo", "size": len(payload)})
    finally:
        echo_task.cancel()
    host, port = relayed[0].host, relayed[0].port
    emit({"event": "ok", "relayed": f"{host}:{port}", "messages": len(SIZES)})


async def main():
    args = parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    a = relay_agent(args, controlling=True)
    if args.both_relay:
        b = relay_agent(args, controlling=False)
    else:
        b = aioice.Connection(ice_controlling=False, use_ipv6=False)
    status = 0
    try:
        await asyncio.wait_for(run(args, a, b), args.timeout)
    except asyncio.TimeoutError:
        emit({"event": "failed", "reason": f"timeout after {args.timeout} s"})
        status = 1
    except Exception as exc:  # noqa: BLE001 - report any failure as an event
        emit({"event": "failed", "reason": f"{type(exc).__name__}: {exc}"})
        status = 1
    for conn in (a, b):
        try:
            await asyncio.wait_for(conn.close(), 2.0)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
