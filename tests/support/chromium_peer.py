"""Headless Chromium as an ICE peer that speaks floe's JSON-lines protocol on stdin/stdout.

An RTCPeerConnection with one data channel, in a blank page of a headless Chromium that
this script starts and drives over the Chrome DevTools Protocol (a small stdlib WebSocket
client below; no third-party package). The JSON lines are translated to and from SDP:
the remote's ufrag, pwd and candidates become a remote description (with a well-formed
but dummy a=fingerprint and a=setup: floe ice has no DTLS, so DTLS never completes, and
only ICE is tested), and Chromium's local description and trickled candidates become
credentials and candidate lines.

stdout, one JSON object a line (as tests/support/aioice_agent.py):
    {"ufrag": "...", "pwd": "...", "role": "controlling"}      our description, first
    {"candidate": "<RFC 8839 candidate-attribute value>"}        one per local candidate
    {"end-of-candidates": true}
    {"event": "ice-state", "state": "checking"}                  each iceConnectionState
    {"event": "skipped-candidate", "candidate": "..."}           not on loopback: not sent
    {"event": "connected"}                                       "connected" or "completed"
    {"event": "channel-open"}                                    the data channel opened
    {"event": "data", "data": "<text>"}                          a data-channel message
    {"event": "selected-pair", "local": "<candidate>", "remote": "<candidate>", ...}
    {"event": "failed", "reason": "..."}                         then exit status 1

--controlling makes Chromium the offerer (the controlling agent, RFC 8445 §6.1.1 as
WebRTC does it); --controlled makes it the answerer, so it waits for the remote's
credentials before it prints its own. stdin: the remote's credentials, candidate and
end-of-candidates lines, in any order (trickle). Once connected, the script waits for
stdin to close, then prints Chromium's selected pair (getStats) once it has stayed the
same for a second, and exits 0.

The credentials line also carries `"fingerprint"` and `"setup"` (a=fingerprint, a=setup;
floe ice ignores them). A remote that signals them (another Chromium) gets a real DTLS
handshake, so the data channel opens and --send TEXT goes over it; against floe ice a
dummy fingerprint stands in and the data channel never opens.

Loopback only (INTEROP.md). A page without a media permission (this one) makes
Chromium bind its host sockets to the wildcard address and signal them with the address
of the default route (192.0.2.2 and fd00::2 here). Only candidates on 127.0.0.1 or ::1
are signalled; the others are printed as skipped-candidate and never reach the remote.
The remote only ever sends to loopback, then: to its TURN server on 127.0.0.1, and to
Chromium's wildcard sockets through their checks, which leave from 127.0.0.1, so the
remote meets them as peer-reflexive candidates (RFC 8445 §7.3.1.3). Granting a media
permission (--use-fake-ui-for-media-stream) with --allow-loopback-in-peer-connection
would give real 127.0.0.1 candidates, but also sockets bound to the other interfaces,
whose checks would make the remote answer to those addresses: not done.
"""

import argparse
import base64
import ctypes
import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

# The flags that make headless Chromium quiet and self-contained on a closed machine,
# plus the WebRTC ones this peer needs.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    # Chromium still looks up Google's hosts at start (accounts, update, clients2):
    # resolve no name at all, so nothing leaves loopback (INTEROP.md), not even DNS.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    # Host candidates are mDNS `<uuid>.local` names by default, which floe cannot resolve
    # yet (issue 16 item 4): ask for plain IP addresses instead (the script then keeps
    # the ones off loopback to itself).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

# A well-formed SHA-256 fingerprint (RFC 8122) for the remote description. Nobody holds
# its certificate: DTLS cannot complete, which is fine, as only ICE is under test.
DUMMY_FINGERPRINT = ":".join(["AB"] * 32)

PAGE_SCRIPT = r"""
(async () => {
  const cfg = __CONFIG__;
  const out = (obj) => window.floeEmit(JSON.stringify(obj));
  const pc = new RTCPeerConnection({
    iceServers: cfg.iceServers,
    iceTransportPolicy: cfg.relayOnly ? 'relay' : 'all',
    bundlePolicy: 'max-bundle',
    rtcpMuxPolicy: 'require',
  });
  const state = { credentialsSent: false, early: [], remote: null, pending: [], connected: false };
  const loopback = (c) => /^[^ ]+ \d+ [^ ]+ \d+ (127\.\d+\.\d+\.\d+|::1) /.test(c);
  const sendCandidate = (c) => {
    if (loopback(c)) out({ candidate: c }); else out({ event: 'skipped-candidate', candidate: c });
  };
  pc.onicecandidate = (e) => {
    let line;
    if (!e.candidate) line = { 'end-of-candidates': true };
    else if (!e.candidate.candidate) return;
    else line = { candidate: e.candidate.candidate.replace(/^candidate:/, '') };
    if (!state.credentialsSent) { state.early.push(line); return; }
    if (line.candidate) sendCandidate(line.candidate); else out(line);
  };
  pc.onicecandidateerror = (e) => out({ event: 'candidate-error', url: e.url, code: e.errorCode, reason: e.errorText });
  pc.oniceconnectionstatechange = () => {
    const s = pc.iceConnectionState;
    out({ event: 'ice-state', state: s });
    if ((s === 'connected' || s === 'completed') && !state.connected) {
      state.connected = true;
      out({ event: 'connected' });
    }
    if (s === 'failed') out({ event: 'failed', reason: 'iceConnectionState failed' });
  };
  // Credentials, plus the DTLS fingerprint and role (RFC 8842) for a peer that does
  // DTLS (another Chromium); floe ice ignores the two extra fields.
  const attribute = (sdp, name) => new RegExp('^a=' + name + ':(.*)$', 'm').exec(sdp)[1].trim();
  const credentials = (sdp) => ({
    ufrag: attribute(sdp, 'ice-ufrag'),
    pwd: attribute(sdp, 'ice-pwd'),
    fingerprint: attribute(sdp, 'fingerprint'),
    setup: attribute(sdp, 'setup'),
  });
  const announce = (sdp) => {
    out(Object.assign(credentials(sdp), { role: cfg.controlling ? 'controlling' : 'controlled' }));
    state.credentialsSent = true;
    for (const line of state.early) {
      if (line.candidate) sendCandidate(line.candidate); else out(line);
    }
    state.early = [];
  };
  // The remote's description: one data-channel m-line (RFC 8841), the remote's ICE
  // credentials (RFC 8839 §5.4), its fingerprint (a dummy one for floe ice) and the DTLS
  // role (RFC 8842).
  const remoteSdp = (r, setup) => [
    'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0',
    'a=group:BUNDLE 0', 'a=msid-semantic: WMS',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0',
    'a=ice-ufrag:' + r.ufrag, 'a=ice-pwd:' + r.pwd, 'a=ice-options:trickle',
    'a=fingerprint:' + (r.fingerprint || 'sha-256 ' + cfg.fingerprint), 'a=setup:' + setup,
    'a=mid:0', 'a=sctp-port:5000', 'a=max-message-size:262144', '',
  ].join('\r\n');
  const addRemote = async (c) => {
    if (c === null) await pc.addIceCandidate({ candidate: '', sdpMid: '0', sdpMLineIndex: 0 });
    else await pc.addIceCandidate({ candidate: 'candidate:' + c, sdpMid: '0', sdpMLineIndex: 0 });
  };
  // The data channel opens only where DTLS completes (against another Chromium).
  const channel = (dc) => {
    dc.onopen = () => {
      out({ event: 'channel-open' });
      if (cfg.send !== null) dc.send(cfg.send);
    };
    dc.onmessage = (e) => out({ event: 'data', data: String(e.data) });
  };
  pc.ondatachannel = (e) => channel(e.channel);
  let ready = null;
  if (cfg.controlling) {
    channel(pc.createDataChannel('floe'));
    ready = (async () => {
      await pc.setLocalDescription(await pc.createOffer());
      announce(pc.localDescription.sdp);
    })();
  }
  const remoteCredentials = async (r) => {
    if (state.remote) {
      if (state.remote.ufrag !== r.ufrag || state.remote.pwd !== r.pwd)
        out({ event: 'warning', reason: 'new remote credentials ignored: no ICE restart here' });
      return;
    }
    state.remote = r;
    if (cfg.controlling) {
      await ready;
      // Our offer said actpass; `active` (unless the remote says) makes the remote the
      // DTLS client, so against floe ice Chromium only waits and sends no DTLS.
      await pc.setRemoteDescription({ type: 'answer', sdp: remoteSdp(r, r.setup || 'active') });
    } else {
      await pc.setRemoteDescription({ type: 'offer', sdp: remoteSdp(r, r.setup || 'actpass') });
      await pc.setLocalDescription(await pc.createAnswer());
      announce(pc.localDescription.sdp);
    }
    for (const c of state.pending) await addRemote(c);
    state.pending = [];
  };
  const line = async (msg) => {
    if ('ufrag' in msg && 'pwd' in msg) await remoteCredentials(msg);
    else if ('candidate' in msg || msg['end-of-candidates']) {
      const c = 'candidate' in msg ? msg.candidate.replace(/^a=/, '').replace(/^candidate:/, '') : null;
      if (!state.remote) state.pending.push(c); else await addRemote(c);
    }
  };
  // The selected pair as Chromium's stats report it (RTCIceCandidatePairStats).
  const asLine = (c) => `${c.foundation} 1 ${c.protocol} ${c.priority} ${c.address} ${c.port} typ ${c.candidateType}`;
  const selected = async () => {
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    if (!pairId) return { event: 'failed', reason: 'no selected candidate pair in getStats' };
    const pair = stats.get(pairId);
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      event: 'selected-pair', local: asLine(local), remote: asLine(remote), state: pair.state,
      nominated: pair.nominated, requestsSent: pair.requestsSent, responsesReceived: pair.responsesReceived,
      requestsReceived: pair.requestsReceived, responsesSent: pair.responsesSent,
      iceConnectionState: pc.iceConnectionState, dtlsState: stats.get(pair.transportId)?.dtlsState,
    };
  };
  window.floePeer = { line, selected, pc };
  return 'ready';
})()
"""


class WebSocket:
    """The client half of RFC 6455, just enough for the DevTools protocol: text frames
    out (masked), text frames in (possibly fragmented), ping answered, close ends."""

    def __init__(self, url, timeout):
        rest = url[len("ws://"):]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(None)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"DevTools refused the WebSocket: {status.decode(errors='replace')}")
        self.send_lock = threading.Lock()

    def _frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.send_lock:
            self.sock.sendall(header + mask + masked)

    def send(self, text):
        self._frame(0x1, text.encode())

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        return data

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            mask = self._exact(4) if b1 & 0x80 else None
            payload = self._exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()


class DevTools:
    """One page's DevTools session: commands with replies, and the page's floeEmit calls
    (Runtime.bindingCalled) as output lines."""

    def __init__(self, url, on_emit, timeout):
        self.ws = WebSocket(url, timeout)
        self.on_emit = on_emit
        self.next_id = 0
        self.replies = {}
        self.cond = threading.Condition()
        self.closed = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while True:
                msg = json.loads(self.ws.recv())
                if "id" in msg:
                    with self.cond:
                        self.replies[msg["id"]] = msg
                        self.cond.notify_all()
                elif msg.get("method") == "Runtime.bindingCalled":
                    self.on_emit(json.loads(msg["params"]["payload"]))
                elif msg.get("method") == "Runtime.consoleAPICalled":
                    args = [str(a.get("value", a.get("description", ""))) for a in msg["params"]["args"]]
                    log("console:", *args)
                elif msg.get("method") == "Runtime.exceptionThrown":
                    log("page exception:", json.dumps(msg["params"]["exceptionDetails"]))
        except (ConnectionError, OSError, ValueError) as exc:
            with self.cond:
                self.closed = exc
                self.cond.notify_all()

    def call(self, method, params=None, timeout=30.0):
        with self.cond:
            self.next_id += 1
            mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        with self.cond:
            while mid not in self.replies:
                left = deadline - time.monotonic()
                if self.closed is not None:
                    raise RuntimeError(f"DevTools connection lost: {self.closed}")
                if left <= 0:
                    raise RuntimeError(f"{method}: no reply within {timeout} s")
                self.cond.wait(left)
            reply = self.replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def evaluate(self, expression, timeout=30.0):
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"page: {text}")
        return result["result"].get("value")


OUT_LOCK = threading.Lock()


def emit(obj):
    with OUT_LOCK:
        print(json.dumps(obj), flush=True)


def log(*words):
    print(*words, file=sys.stderr, flush=True)


def host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return (host.strip("[]"), int(port))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--controlling", action="store_true", help="Chromium offers")
    role.add_argument("--controlled", action="store_true", help="Chromium answers")
    p.add_argument("--turn", type=host_port, metavar="HOST:PORT", help="a TURN server (UDP)")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--relay-only", action="store_true", help="iceTransportPolicy 'relay'")
    p.add_argument("--send", metavar="TEXT", help="send TEXT on the data channel once open")
    p.add_argument("--chromium", default=os.environ.get("FLOE_CHROMIUM", "chromium"))
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    args = p.parse_args()
    if args.relay_only and not args.turn:
        p.error("--relay-only needs --turn")
    return args


def own_session():
    """In the child before exec: a process group of its own (killed as one at the end),
    and SIGKILL when this script dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def start_chromium(args, profile, page_url):
    binary = shutil.which(args.chromium) or args.chromium
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page_url]
    log("starting:", " ".join(cmd))
    logfile = open(os.path.join(profile, "chromium.log"), "wb")
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile, preexec_fn=own_session
    )
    # Chromium writes the port it chose and the browser's path here once it listens.
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} at start; see its log")
        try:
            with open(port_file) as f:
                port = int(f.readline().strip())
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    else:
        raise RuntimeError("chromium wrote no DevToolsActivePort")
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
        except (OSError, ValueError):
            targets = []
        pages = [t for t in targets if t.get("type") == "page" and t.get("url") == page_url]
        if pages:
            return proc, pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.05)
    raise RuntimeError("chromium opened no page")


def read_stdin(lines):
    for line in sys.stdin:
        lines.put(line)
    lines.put(None)


def settled_pair(page, deadline, quiet=1.0):
    """Chromium's selected pair once it has stayed the same for `quiet` seconds (or at
    the deadline): a switch it has just nominated (libwebrtc moves to a better pair
    after the first) then has had time to reach the remote, whose triggered check
    must succeed before it selects the pair too (RFC 8445 §7.3.1.5)."""
    def key(p):
        return (p.get("event"), p.get("local"), p.get("remote"), p.get("nominated"))

    pair = page.evaluate("window.floePeer.selected()")
    since = time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        now = page.evaluate("window.floePeer.selected()")
        if key(now) != key(pair):
            since = time.monotonic()
        pair = now
    return pair


def run(args, profile, outcome):
    page_url = "about:blank"
    proc, url = start_chromium(args, profile, page_url)
    try:
        events = queue.Queue()

        def on_emit(obj):
            emit(obj)
            if obj.get("event") in ("connected", "failed"):
                events.put(obj)

        page = DevTools(url, on_emit, args.timeout)
        page.call("Runtime.enable")
        # The target can be listed before its document has committed.
        deadline = time.monotonic() + args.timeout
        while page.evaluate("location.href + ' ' + document.readyState") != page_url + " complete":
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not load {page_url}")
            time.sleep(0.05)
        page.call("Runtime.addBinding", {"name": "floeEmit"})
        ice_servers = []
        if args.turn:
            host, port = args.turn
            ice_servers.append(
                {
                    "urls": f"turn:{host}:{port}?transport=udp",
                    "username": args.user or "",
                    "credential": args.password or "",
                }
            )
        config = {
            "controlling": bool(args.controlling),
            "iceServers": ice_servers,
            "relayOnly": args.relay_only,
            "fingerprint": DUMMY_FINGERPRINT,
            "send": args.send,
        }
        page.evaluate(PAGE_SCRIPT.replace("__CONFIG__", json.dumps(config)))

        lines = queue.Queue()
        threading.Thread(target=read_stdin, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + args.timeout
        connected = stdin_closed = False
        while not (connected and stdin_closed):
            while not events.empty():
                event = events.get()
                if event["event"] == "failed":
                    outcome["status"] = 1
                    return
                connected = True
            if page.closed is not None or proc.poll() is not None:
                raise RuntimeError(f"chromium went away (exit status {proc.poll()})")
            left = deadline - time.monotonic()
            if left <= 0:
                emit({"event": "failed", "reason": f"timeout after {args.timeout} s"})
                outcome["status"] = 1
                return
            try:
                line = lines.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            if line is None:
                stdin_closed = True
                continue
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                log("ignoring a line that is not JSON:", repr(line))
                continue
            if isinstance(msg, dict) and "event" not in msg:
                page.evaluate(f"window.floePeer.line({json.dumps(msg)})")
        pair = settled_pair(page, deadline)
        emit(pair)
        outcome["status"] = 0 if pair.get("event") == "selected-pair" else 1
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()


def main():
    args = parse_args()
    profile = tempfile.mkdtemp(prefix="floe-chromium-")
    outcome = {"status": 1}
    try:
        run(args, profile, outcome)
    except Exception as exc:  # noqa: BLE001 - report any failure as an event
        emit({"event": "failed", "reason": f"{type(exc).__name__}: {exc}"})
        outcome["status"] = 1
    finally:
        log_path = os.path.join(profile, "chromium.log")
        if outcome["status"] != 0 and os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                log("--- chromium log (tail)\n" + "".join(f.readlines()[-40:]))
        shutil.rmtree(profile, ignore_errors=True)
    return outcome["status"]


if __name__ == "__main__":
    sys.exit(main())
