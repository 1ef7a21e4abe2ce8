"""A UDP probe of a NAT, for the NAT lab (tests/nat_lab.rs, tests/support/netns.rs).

probe SERVER:PORT [SERVER:PORT ...]
    One UDP socket sends a STUN Binding request (RFC 8489 §5) to each server in turn
    and prints, one JSON line:
        {"local": "ip:port", "mapped": ["ip:port", ...]}
    the reflexive address each server saw (the NAT's mapping towards it: the same for
    every server behind an endpoint-independent mapping, one per server behind a
    symmetric NAT). Then it waits for a line on stdin (the test has meanwhile sent
    unsolicited datagrams to the mapped address from elsewhere) and prints
        {"unsolicited": "ip:port"}    or    {"unsolicited": null}
    whether a datagram from any address other than the servers arrived within
    --wait seconds (an address-and-port-dependent filter drops them).

send IP:PORT [--count N] [--bind IP]
    Sends N small datagrams from a fresh socket (on IP when given) to IP:PORT, 0.1 s
    apart.
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
XOR_MAPPED_ADDRESS = 0x0020
RETRY = 0.5
TRIES = 20


def host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected IP:PORT, got {text!r}")
    return (host, int(port))


def fmt(addr):
    return f"{addr[0]}:{addr[1]}"


def xor_mapped(msg, txid):
    """The XOR-MAPPED-ADDRESS (IPv4) of a Binding success response, or None."""
    if len(msg) < 20:
        return None
    mtype, length, cookie = struct.unpack("!HHI", msg[:8])
    if mtype != BINDING_SUCCESS or cookie != MAGIC_COOKIE or msg[8:20] != txid:
        return None
    body = msg[20:20 + length]
    while len(body) >= 4:
        atype, alen = struct.unpack("!HH", body[:4])
        value = body[4:4 + alen]
        if atype == XOR_MAPPED_ADDRESS and alen >= 8 and value[1] == 0x01:
            port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC_COOKIE >> 16)
            ip = struct.unpack("!I", value[4:8])[0] ^ MAGIC_COOKIE
            return (socket.inet_ntoa(struct.pack("!I", ip)), port)
        body = body[4 + (alen + 3) // 4 * 4:]
    return None


def binding(sock, server):
    txid = os.urandom(12)
    request = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + txid
    for _ in range(TRIES):
        sock.sendto(request, server)
        deadline = time.monotonic() + RETRY
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data, sender = sock.recvfrom(2048)
            if sender == server and (mapped := xor_mapped(data, txid)):
                return mapped
    raise SystemExit(f"no Binding response from {fmt(server)}")


def probe(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    mapped = []
    for server in args.servers:
        # Which local address the kernel picks towards the server.
        probe_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe_sock.connect(server)
        local = (probe_sock.getsockname()[0], sock.getsockname()[1])
        probe_sock.close()
        mapped.append(fmt(binding(sock, server)))
    print(json.dumps({"local": fmt(local), "mapped": mapped}), flush=True)
    sys.stdin.readline()
    servers = set(args.servers)
    deadline = time.monotonic() + args.wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        _, sender = sock.recvfrom(2048)
        if sender not in servers:
            print(json.dumps({"unsolicited": fmt(sender)}), flush=True)
            return
    print(json.dumps({"unsolicited": None}), flush=True)


def send(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if args.bind:
        sock.bind((args.bind, 0))
    for _ in range(args.count):
        sock.sendto(b"unsolicited", args.target)
        time.sleep(0.1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("probe")
    pr.add_argument("servers", type=host_port, nargs="+", metavar="SERVER:PORT")
    pr.add_argument("--wait", type=float, default=2.0, metavar="SECONDS")
    se = sub.add_parser("send")
    se.add_argument("target", type=host_port, metavar="IP:PORT")
    se.add_argument("--count", type=int, default=5)
    se.add_argument("--bind", metavar="IP")
    args = p.parse_args()
    probe(args) if args.command == "probe" else send(args)


if __name__ == "__main__":
    main()
