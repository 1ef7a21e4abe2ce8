"""A libnice ICE agent that speaks floe's JSON-lines protocol on stdin/stdout.

It runs on the system Python with libnice's GObject introspection (Debian packages
`gir1.2-nice-0.1 python3-gi`): `from gi.repository import Nice, GLib`.

stdout, one JSON object a line (as tests/support/aioice_agent.py, plus restart):
    {"ufrag": "...", "pwd": "...", "role": "controlling"}      our description, first
    {"candidate": "<RFC 8839 candidate-attribute value>"}        one per local candidate
    {"end-of-candidates": true}
    {"event": "nominated", "local": "<candidate>", "remote": "<candidate>"}
    {"event": "connected"}
    {"event": "restart", "by": "local" | "remote"}               then the new description
    {"event": "data", "data": "<text>"}                          each datagram received
    {"event": "failed", "reason": "..."}                         then exit status 1

stdin: the remote's description, candidate and end-of-candidates lines, in any order and
at any time (trickle). A new description mid-session is an ICE restart, answered once
with nice_agent_restart_stream and new credentials of our own. With --restart-after S,
the agent restarts itself S seconds after connecting (and says `"restart-after"` on
its first description, so that the remote stays to answer).

With --send TEXT, TEXT is sent once connected (on every component, with --components)
and again every 0.5 s until something has been received on every component (again after
a restart); the agent exits 0 once it has both sent and received, also when the peer,
done too, exits first and so fails a TCP pair. Without --send, it exits 0 once
connected and stdin is closed.

Gathering is loopback only (INTEROP.md): host candidates on 127.0.0.1 alone. With
--tcp-only the agent gathers and checks ICE-TCP (RFC 6544) candidates only
(`ice-tcp=True, ice-udp=False`). With --renomination it sets `support-renomination`
(libnice selects the pair of the highest NOMINATION it receives, as libwebrtc sends it;
draft-thatcher-ice-renomination) and offers `"renomination": true` on its description.
"""

import argparse
import ctypes
import json
import sys
import threading

import gi

gi.require_version("Nice", "0.1")
from gi.repository import GLib, Nice  # noqa: E402

RESEND_INTERVAL_MS = 500
LINGER_MS = 1000

# nice_agent_attach_recv takes a C callback, which introspection does not offer (and
# nice_agent_recv_nonblocking crashes through it): call it through ctypes.
_libnice = ctypes.CDLL("libnice.so.10")
_libglib = ctypes.CDLL("libglib-2.0.so.0")
_libglib.g_main_context_default.restype = ctypes.c_void_p
RECV_FUNC = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p,
    ctypes.c_void_p,
)
_libnice.nice_agent_attach_recv.argtypes = [
    ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, RECV_FUNC, ctypes.c_void_p,
]
_libnice.nice_agent_attach_recv.restype = ctypes.c_int


def gobject_pointer(obj):
    """The C pointer of a PyGObject object."""
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get(obj.__gpointer__, None)


def emit(obj):
    print(json.dumps(obj), flush=True)


def bare(sdp):
    """`a=candidate:...` as libnice writes it, to the bare RFC 8839 value."""
    sdp = sdp.strip()
    if sdp.startswith("a="):
        sdp = sdp[2:]
    if sdp.startswith("candidate:"):
        sdp = sdp[len("candidate:"):]
    return sdp


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--controlling", action="store_true")
    role.add_argument("--controlled", action="store_true")
    p.add_argument("--send", metavar="TEXT")
    p.add_argument("--restart-after", type=float, metavar="SECONDS")
    p.add_argument("--components", type=int, default=1)
    p.add_argument(
        "--tcp-only", action="store_true", help="ICE-TCP (RFC 6544) candidates only"
    )
    p.add_argument(
        "--renomination", action="store_true", help="accept NOMINATION (0xC001) and offer it"
    )
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    return p.parse_args()


class Agent:
    def __init__(self, args):
        self.args = args
        self.loop = GLib.MainLoop()
        self.status = 1
        self.agent = Nice.Agent.new_full(
            GLib.MainContext.default(), Nice.Compatibility.RFC5245, Nice.AgentOption.ICE_TRICKLE
        )
        self.agent.set_property("controlling-mode", args.controlling)
        self.agent.set_property("ice-tcp", args.tcp_only)
        self.agent.set_property("ice-udp", not args.tcp_only)
        self.agent.set_property("support-renomination", args.renomination)
        address = Nice.Address.new()
        address.set_from_string("127.0.0.1")
        self.agent.add_local_address(address)
        self.components = list(range(1, args.components + 1))
        self.stream = self.agent.add_stream(len(self.components))
        self.agent.connect("new-candidate-full", self.on_candidate)
        self.agent.connect("candidate-gathering-done", self.on_gathering_done)
        self.agent.connect("component-state-changed", self.on_state)
        self.agent.connect("new-selected-pair-full", self.on_selected)
        self.remote = None  # (ufrag, pwd)
        self.pending = []  # remote candidates before the description
        self.gathered = False
        self.ready = set()
        self.connected = False
        self.restarted = False
        self.awaiting_answer = False
        self.remote_will_restart = False
        self.stdin_closed = False
        self.sent = False
        self.received = False
        self.received_on = set()
        self.finishing = False

    # --- local side
    def describe(self, first):
        ok, ufrag, pwd = self.agent.get_local_credentials(self.stream)
        line = {
            "ufrag": ufrag,
            "pwd": pwd,
            "role": "controlling" if self.args.controlling else "controlled",
        }
        if self.args.renomination:
            line["renomination"] = True
        if first and self.args.restart_after is not None:
            line["restart-after"] = self.args.restart_after
        emit(line)

    def on_candidate(self, agent, candidate):
        # Local peer-reflexive candidates are learnt from checks, not signalled.
        if self.gathered and candidate.type != Nice.CandidateType.PEER_REFLEXIVE:
            emit({"candidate": bare(agent.generate_local_candidate_sdp(candidate))})

    def on_gathering_done(self, agent, stream):
        self.gathered = True
        self.describe(first=True)
        self.signal_candidates()

    def signal_candidates(self):
        for component in self.components:
            for c in self.agent.get_local_candidates(self.stream, component):
                emit({"candidate": bare(self.agent.generate_local_candidate_sdp(c))})
        emit({"end-of-candidates": True})

    def on_state(self, agent, stream, component, state):
        if state == Nice.ComponentState.READY:
            self.ready.add(component)
            if self.ready == set(self.components) and not self.connected:
                self.connected = True
                emit({"event": "connected"})
                if self.args.restart_after is not None and not self.restarted:
                    GLib.timeout_add(int(self.args.restart_after * 1000), self.restart_local)
                self.send()
                self.maybe_finish()
        elif state == Nice.ComponentState.FAILED:
            if self.finishing:
                # The peer, done too, exited first and closed a TCP pair's connection:
                # the exchange is complete, so this still ends 0 (as `floe ice` does).
                emit({"event": "failed", "reason": f"component {component} failed after the exchange"})
                return
            self.fail(f"component {component} failed")

    def on_selected(self, agent, stream, component, local, remote):
        emit(
            {
                "event": "nominated",
                "component": component,
                "local": bare(agent.generate_local_candidate_sdp(local)),
                "remote": bare(agent.generate_local_candidate_sdp(remote)),
            }
        )
        if self.restarted and not self.connected and component == self.components[-1]:
            self.connected = True
            emit({"event": "connected"})
            self.send()

    # --- ICE restart
    def restart(self, by):
        self.agent.restart_stream(self.stream)
        self.restarted = True
        self.connected = False
        self.sent = False
        self.received = False
        self.received_on = set()
        emit({"event": "restart", "by": by})
        self.describe(first=False)
        self.signal_candidates()

    def restart_local(self):
        self.awaiting_answer = True
        self.restart("local")
        return False

    # --- remote side
    def on_line(self, line):
        try:
            msg = json.loads(line)
        except ValueError:
            return False
        if not isinstance(msg, dict) or "event" in msg:
            return False
        if "ufrag" in msg and "pwd" in msg:
            self.remote_will_restart |= msg.get("restart-after") is not None
            new = (msg["ufrag"], msg["pwd"])
            if self.remote == new:
                return False
            if self.remote is not None:
                if self.awaiting_answer:
                    self.awaiting_answer = False
                elif not self.restarted:
                    self.restart("remote")
            self.remote = new
            self.agent.set_remote_credentials(self.stream, *new)
            for c in self.pending:
                self.add_remote(c)
            self.pending.clear()
        elif "candidate" in msg:
            if self.remote is None:
                self.pending.append(msg["candidate"])
            else:
                self.add_remote(msg["candidate"])
        elif msg.get("end-of-candidates"):
            self.agent.peer_candidate_gathering_done(self.stream)
        return False

    def add_remote(self, text):
        c = self.agent.parse_remote_candidate_sdp(self.stream, "a=candidate:" + bare(text))
        if c is None:
            print(f"cannot parse the candidate {text!r}", file=sys.stderr)
            return
        component = int(bare(text).split()[1])
        self.agent.set_remote_candidates(self.stream, component, [c])

    def on_stdin_closed(self):
        self.stdin_closed = True
        self.maybe_finish()
        return False

    def read_stdin(self):
        for line in sys.stdin:
            line = line.strip()
            if line:
                GLib.idle_add(self.on_line, line)
        GLib.idle_add(self.on_stdin_closed)

    # --- data
    def attach_recv(self):
        self.recv_callback = RECV_FUNC(self.on_data)  # kept alive as long as the agent
        agent = gobject_pointer(self.agent)
        context = _libglib.g_main_context_default()
        for component in self.components:
            _libnice.nice_agent_attach_recv(
                agent, self.stream, component, context, self.recv_callback, None
            )

    def on_data(self, agent, stream, component, length, buf, user_data):
        data = ctypes.string_at(buf, length).decode(errors="replace")
        emit({"event": "data", "component": component, "data": data})
        self.received_on.add(component)
        self.received = self.received_on >= set(self.components)
        self.maybe_finish()

    def send(self):
        if self.args.send is None or not self.connected:
            return
        payload = self.args.send
        size = len(payload.encode())
        sent = [self.agent.send(self.stream, c, size, payload) > 0 for c in self.components]
        self.sent |= all(sent)

    def resend(self):
        if self.connected and not self.received:
            self.send()
        return True

    def restart_pending(self):
        return not self.restarted and (
            self.args.restart_after is not None or self.remote_will_restart
        )

    def maybe_finish(self):
        if self.finishing or self.restart_pending():
            return
        if self.args.send is not None:
            done = self.sent and self.received
        else:
            done = self.connected and self.stdin_closed
        if done:
            self.finishing = True
            self.send()
            GLib.timeout_add(LINGER_MS if self.args.send else 0, self.finish, 0)

    def finish(self, status):
        self.status = status
        self.loop.quit()
        return False

    def fail(self, reason):
        emit({"event": "failed", "reason": reason})
        self.finish(1)

    def timeout(self):
        self.fail(f"timeout after {self.args.timeout} s")
        return False

    def run(self):
        self.agent.gather_candidates(self.stream)
        self.attach_recv()
        threading.Thread(target=self.read_stdin, daemon=True).start()
        GLib.timeout_add(RESEND_INTERVAL_MS, self.resend)
        GLib.timeout_add(int(self.args.timeout * 1000), self.timeout)
        self.loop.run()
        return self.status


if __name__ == "__main__":
    sys.exit(Agent(parse_args()).run())
