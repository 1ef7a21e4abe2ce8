"""aioice_agent.py, gathering host candidates on the given addresses instead of loopback:
the NAT lab's agent inside its own network namespace (tests/nat_lab.rs), whose only
interface besides loopback is its link to the NAT router.

    aioice_lab_agent.py --host IP [--host IP ...] <aioice_agent.py's arguments>
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aioice.ice  # noqa: E402
import aioice_agent  # noqa: E402  (sets loopback-only gathering, replaced below)


def take_hosts(argv):
    hosts, rest = [], [argv[0]]
    args = iter(argv[1:])
    for arg in args:
        if arg == "--host":
            hosts.append(next(args, None))
        else:
            rest.append(arg)
    if not hosts or None in hosts:
        sys.exit("aioice_lab_agent.py: --host IP is required")
    return hosts, rest


if __name__ == "__main__":
    HOSTS, sys.argv = take_hosts(sys.argv)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(HOSTS)
    sys.exit(asyncio.run(aioice_agent.main()))
