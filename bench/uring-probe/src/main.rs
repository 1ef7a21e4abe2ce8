//! io_uring vs epoll CPU-per-datagram experiment (TURN-relay-like, many quiet UDP sockets).
//! Traffic goes only to 127.0.0.1.
//!
//! Subcommands (args are key=value):
//!   recvsrv  mode=epoll-drain|epoll-single|u-recv|u-recvmsg|u-mshot|u-mshotmsg  n= warm= secs= portfile= [fixed=1] [taskrun=defer|coop|none]
//!   sendsrv  mode=sendto|u-sendmsg|u-send  n= rate= sinkfile= warm= secs= [fixed=1] [taskrun=..]
//!   echosrv  mode=epoll-drain|epoll-single|u-recvmsg|u-mshotmsg  n= warm= secs= portfile= [fixed=1] [taskrun=..]
//!   load     portfile= rate= secs= [reply=1]    (sends 160B datagrams to every port in portfile, paced per 1 ms)
//!   sink     portfile= secs=                     (one socket, receives and discards)
#![allow(clippy::missing_safety_doc)]

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::collections::HashMap;
use std::mem::{size_of, zeroed};
use std::os::fd::RawFd;

const PAYLOAD: usize = 160;
const BUFSZ: usize = 2048;

// ---------------------------------------------------------------- helpers
/// Jittered 1 ms pacing (uniform 0.5..1.5 ms) so periodic tick-sampled user/sys accounting
/// (HZ=250, TICK_CPU_ACCOUNTING) does not phase-lock with the load. Returns (next_deadline, elapsed_ns).
struct Pacer { next: u64, seed: u64, period: u64 }
impl Pacer {
    fn new(period_ns: u64) -> Self { Pacer { next: now_ns(), seed: 0x9e3779b97f4a7c15 ^ now_ns(), period: period_ns } }
    fn tick(&mut self) -> u64 {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let d = self.period / 2 + (self.seed >> 33) % self.period;
        self.next += d;
        sleep_until(self.next);
        d
    }
}
fn now_ns() -> u64 {
    let mut ts: libc::timespec = unsafe { zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
fn sleep_until(ns: u64) {
    let ts = libc::timespec { tv_sec: (ns / 1_000_000_000) as _, tv_nsec: (ns % 1_000_000_000) as _ };
    unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) };
}
fn rusage() -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let u = ru.ru_utime.tv_sec as f64 * 1e6 + ru.ru_utime.tv_usec as f64;
    let s = ru.ru_stime.tv_sec as f64 * 1e6 + ru.ru_stime.tv_usec as f64;
    (u, s)
}
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
fn raise_nofile() {
    let mut rl: libc::rlimit = unsafe { zeroed() };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
}
fn sa_in(port: u16) -> libc::sockaddr_in {
    let mut a: libc::sockaddr_in = unsafe { zeroed() };
    a.sin_family = libc::AF_INET as _;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    a
}
const SALEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as _;

fn udp_socket(bufforce: i32) -> (RawFd, u16) {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", errno());
        if bufforce > 0 {
            let v: i32 = bufforce;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v as *const _ as _, 4);
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v as *const _ as _, 4);
        }
        let a = sa_in(0);
        let r = libc::bind(fd, &a as *const _ as *const libc::sockaddr, SALEN);
        assert!(r == 0, "bind: {}", errno());
        let mut b: libc::sockaddr_in = zeroed();
        let mut l = SALEN;
        libc::getsockname(fd, &mut b as *mut _ as *mut libc::sockaddr, &mut l);
        (fd, u16::from_be(b.sin_port))
    }
}
fn set_blocking(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
}

struct Args(HashMap<String, String>);
impl Args {
    fn s(&self, k: &str, d: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| d.to_string())
    }
    fn f(&self, k: &str, d: f64) -> f64 {
        self.0.get(k).map(|v| v.parse().unwrap()).unwrap_or(d)
    }
    fn u(&self, k: &str, d: usize) -> usize {
        self.0.get(k).map(|v| v.parse().unwrap()).unwrap_or(d)
    }
}

fn write_ports(path: &str, ports: &[u16]) {
    let s: String = ports.iter().map(|p| format!("{p}\n")).collect();
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, s).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
fn read_ports(path: &str) -> Vec<u16> {
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(path) {
            return s.lines().map(|l| l.trim().parse().unwrap()).collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no portfile {path}");
}

/// Measurement window: warm-up, then snapshot getrusage at start and end.
struct Meter {
    t_start: u64,
    t_end: u64,
    started: bool,
    ru0: (f64, f64),
    c0: [u64; 4],
    tag: String,
}
impl Meter {
    fn new(a: &Args, tag: String) -> Self {
        let now = now_ns();
        let warm = (a.f("warm", 1.5) * 1e9) as u64;
        let secs = (a.f("secs", 4.0) * 1e9) as u64;
        Meter { t_start: now + warm, t_end: now + warm + secs, started: false, ru0: (0.0, 0.0), c0: [0; 4], tag }
    }
    /// c = [datagrams_in, datagrams_out, waits(syscalls that block), events/cqes]
    /// returns true when finished
    fn check(&mut self, c: [u64; 4]) -> bool {
        let t = now_ns();
        if !self.started {
            if t >= self.t_start {
                self.started = true;
                self.ru0 = rusage();
                self.c0 = c;
                self.t_start = t;
            }
            return false;
        }
        if t < self.t_end {
            return false;
        }
        let ru1 = rusage();
        let dt = (t - self.t_start) as f64 / 1e9;
        let d: Vec<u64> = (0..4).map(|i| c[i] - self.c0[i]).collect();
        let per = if d[0] + d[1] > 0 { (d[0].max(d[1])) as f64 } else { 1.0 };
        let (u, s) = (ru1.0 - self.ru0.0, ru1.1 - self.ru0.1);
        println!(
            "RESULT {} dt={:.3} in={} out={} in_rate={:.0} out_rate={:.0} waits={} evs={} evs_per_wait={:.2} user_us={:.0} sys_us={:.0} user_per={:.3} sys_per={:.3} tot_per={:.3} cpu_pct={:.1}",
            self.tag, dt, d[0], d[1], d[0] as f64 / dt, d[1] as f64 / dt, d[2], d[3],
            d[3] as f64 / d[2].max(1) as f64, u, s, u / per, s / per, (u + s) / per, (u + s) / (dt * 1e6) * 100.0
        );
        true
    }
}

// ---------------------------------------------------------------- io_uring helpers
fn make_ring(a: &Args, entries: u32) -> IoUring {
    let mut b = IoUring::builder();
    match a.s("taskrun", "defer").as_str() {
        "defer" => {
            b.setup_single_issuer().setup_defer_taskrun();
        }
        "coop" => {
            b.setup_single_issuer().setup_coop_taskrun();
        }
        _ => {}
    }
    b.setup_cqsize(entries * 4);
    b.build(entries).expect("io_uring setup")
}

macro_rules! tgt {
    ($fixed:expr, $i:expr, $fd:expr, |$t:ident| $body:expr) => {
        if $fixed {
            let $t = types::Fixed($i as u32);
            $body
        } else {
            let $t = types::Fd($fd);
            $body
        }
    };
}

fn push(ring: &mut IoUring, e: squeue::Entry) {
    unsafe {
        while ring.submission().push(&e).is_err() {
            ring.submit().unwrap();
        }
    }
}

/// Provided-buffer ring (IORING_REGISTER_PBUF_RING) shared by all sockets.
struct BufRing {
    ring: *mut types::BufRingEntry,
    mask: u16,
    tail: u16,
    bufs: Vec<u8>,
    bsz: usize,
}
impl BufRing {
    fn new(ring: &IoUring, entries: u16, bsz: usize, bgid: u16) -> Self {
        let bytes = entries as usize * size_of::<types::BufRingEntry>();
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        assert!(p != libc::MAP_FAILED);
        let mut br = BufRing { ring: p as _, mask: entries - 1, tail: 0, bufs: vec![0u8; entries as usize * bsz], bsz };
        unsafe { ring.submitter().register_buf_ring_with_flags(p as u64, entries, bgid, 0).expect("register_buf_ring") };
        for i in 0..entries {
            br.add(i);
        }
        br.publish();
        br
    }
    fn add(&mut self, bid: u16) {
        unsafe {
            let e = &mut *self.ring.add((self.tail & self.mask) as usize);
            e.set_addr(self.bufs.as_ptr().add(bid as usize * self.bsz) as u64);
            e.set_len(self.bsz as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }
    fn publish(&self) {
        unsafe {
            let t = types::BufRingEntry::tail(self.ring) as *const std::sync::atomic::AtomicU16;
            (*t).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }
    fn buf(&self, bid: u16) -> &[u8] {
        &self.bufs[bid as usize * self.bsz..(bid as usize + 1) * self.bsz]
    }
}

const OP_RECV: u64 = 1 << 32;
const OP_SEND: u64 = 2 << 32;

/// Per-socket state for oneshot recvmsg / send.
#[repr(C)]
struct Slot {
    rbuf: [u8; BUFSZ],
    rname: libc::sockaddr_in,
    riov: libc::iovec,
    rmsg: libc::msghdr,
    sbuf: [u8; BUFSZ],
    sname: libc::sockaddr_in,
    siov: libc::iovec,
    smsg: libc::msghdr,
    send_inflight: bool,
}
fn make_slots(n: usize) -> Vec<Box<Slot>> {
    (0..n)
        .map(|_| {
            let mut s: Box<Slot> = unsafe { Box::new(zeroed()) };
            s.riov = libc::iovec { iov_base: s.rbuf.as_mut_ptr() as _, iov_len: BUFSZ };
            s.rmsg.msg_name = &mut s.rname as *mut _ as _;
            s.rmsg.msg_namelen = SALEN;
            s.rmsg.msg_iov = &mut s.riov;
            s.rmsg.msg_iovlen = 1;
            s.siov = libc::iovec { iov_base: s.sbuf.as_mut_ptr() as _, iov_len: 0 };
            s.smsg.msg_name = &mut s.sname as *mut _ as _;
            s.smsg.msg_namelen = SALEN;
            s.smsg.msg_iov = &mut s.siov;
            s.smsg.msg_iovlen = 1;
            s
        })
        .collect()
}

// ---------------------------------------------------------------- epoll recv / echo server
struct Mmsg {
    hdrs: Vec<libc::mmsghdr>,
    _iovs: Vec<libc::iovec>,
    _bufs: Vec<u8>,
    names: Vec<libc::sockaddr_in>,
}
fn make_mmsg(vlen: usize) -> Box<Mmsg> {
    let mut m = Box::new(Mmsg {
        hdrs: vec![unsafe { zeroed() }; vlen],
        _iovs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; vlen],
        _bufs: vec![0u8; vlen * BUFSZ],
        names: vec![unsafe { zeroed() }; vlen],
    });
    for i in 0..vlen {
        m._iovs[i].iov_base = unsafe { m._bufs.as_mut_ptr().add(i * BUFSZ) } as _;
        m._iovs[i].iov_len = BUFSZ;
    }
    m
}
fn reset_mmsg(m: &mut Mmsg) {
    for i in 0..m.hdrs.len() {
        let h = &mut m.hdrs[i].msg_hdr;
        h.msg_iov = &mut m._iovs[i];
        h.msg_iovlen = 1;
        h.msg_name = &mut m.names[i] as *mut _ as _;
        h.msg_namelen = SALEN;
        h.msg_control = std::ptr::null_mut();
        h.msg_controllen = 0;
        h.msg_flags = 0;
        m.hdrs[i].msg_len = 0;
    }
}

fn epoll_server(a: &Args, echo: bool) {
    let n = a.u("n", 2000);
    let mode = a.s("mode", "epoll-drain");
    let drain = mode == "epoll-drain";
    let vlen = a.u("vlen", 8);
    let socks: Vec<(RawFd, u16)> = (0..n).map(|_| udp_socket(0)).collect();
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    for (i, (fd, _)) in socks.iter().enumerate() {
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: i as u64 };
        unsafe { assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, *fd, &mut ev), 0) };
    }
    write_ports(&a.s("portfile", "/tmp/ports"), &socks.iter().map(|s| s.1).collect::<Vec<_>>());
    let mut m = make_mmsg(vlen);
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let (mut din, mut dout, mut waits, mut nev) = (0u64, 0u64, 0u64, 0u64);
    let mut meter = Meter::new(a, format!("kind={} mode={} n={} vlen={}", if echo { "echo" } else { "recv" }, mode, n, vlen));
    loop {
        let r = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, 100) };
        waits += 1;
        if r > 0 {
            nev += r as u64;
            for e in &evs[..r as usize] {
                let fd = socks[e.u64 as usize].0;
                loop {
                    reset_mmsg(&mut m);
                    let k = unsafe { libc::recvmmsg(fd, m.hdrs.as_mut_ptr(), vlen as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
                    if k <= 0 {
                        break;
                    }
                    din += k as u64;
                    if echo {
                        for j in 0..k as usize {
                            let h = &m.hdrs[j];
                            let s = unsafe {
                                libc::sendto(fd, (*h.msg_hdr.msg_iov).iov_base, h.msg_len as usize, 0, h.msg_hdr.msg_name as *const libc::sockaddr, h.msg_hdr.msg_namelen)
                            };
                            if s > 0 {
                                dout += 1;
                            }
                        }
                    }
                    if !drain && (k as usize) < vlen {
                        break;
                    }
                }
            }
        }
        if meter.check([din, dout, waits, nev]) {
            break;
        }
    }
}

// ---------------------------------------------------------------- io_uring recv / echo server
fn uring_server(a: &Args, echo: bool) {
    let n = a.u("n", 2000);
    let mode = a.s("mode", "u-recvmsg");
    let fixed = a.u("fixed", 0) == 1;
    let socks: Vec<(RawFd, u16)> = (0..n).map(|_| udp_socket(0)).collect();
    let mut ring = make_ring(a, 4096);
    if fixed {
        let fds: Vec<RawFd> = socks.iter().map(|s| s.0).collect();
        ring.submitter().register_files(&fds).expect("register_files");
    }
    let mut slots = make_slots(n);
    let bgid = 7u16;
    let mshot = mode == "u-mshot" || mode == "u-mshotmsg";
    let mut br = if mshot { Some(BufRing::new(&ring, 4096, 512, bgid)) } else { None };
    // msghdr template for multishot recvmsg: only namelen/controllen matter
    let mut mtmpl: libc::msghdr = unsafe { zeroed() };
    mtmpl.msg_namelen = SALEN;
    let mtmpl = Box::new(mtmpl);

    let arm = |ring: &mut IoUring, slots: &mut Vec<Box<Slot>>, i: usize| {
        let fd = socks[i].0;
        let e = match mode.as_str() {
            "u-recv" => tgt!(fixed, i, fd, |t| opcode::Recv::new(t, slots[i].rbuf.as_mut_ptr(), BUFSZ as u32).build()),
            "u-recvmsg" => {
                slots[i].rmsg.msg_namelen = SALEN;
                tgt!(fixed, i, fd, |t| opcode::RecvMsg::new(t, &mut slots[i].rmsg).build())
            }
            "u-mshot" => tgt!(fixed, i, fd, |t| opcode::RecvMulti::new(t, bgid).build()),
            "u-mshotmsg" => tgt!(fixed, i, fd, |t| opcode::RecvMsgMulti::new(t, &*mtmpl, bgid).build()),
            m => panic!("mode {m}"),
        };
        push(ring, e.user_data(OP_RECV | i as u64));
    };
    for i in 0..n {
        arm(&mut ring, &mut slots, i);
    }
    ring.submit().unwrap();
    write_ports(&a.s("portfile", "/tmp/ports"), &socks.iter().map(|s| s.1).collect::<Vec<_>>());

    let (mut din, mut dout, mut waits, mut ncqe) = (0u64, 0u64, 0u64, 0u64);
    let (mut errs, mut rearms, mut drops) = (0u64, 0u64, 0u64);
    let mut meter = Meter::new(
        a,
        format!("kind={} mode={} n={} fixed={} taskrun={} want={} minwait_us={}", if echo { "echo" } else { "recv" }, mode, n, fixed as u8, a.s("taskrun", "defer"), a.u("want", 1), a.u("minwait_us", 0)),
    );
    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(8192);
    let ts = types::Timespec::new().nsec(100_000_000);
    // Optional completion batching: wait for `want` CQEs, but return after minwait_us if >=1 is ready
    // (IORING_ENTER_EXT_ARG min_wait_usec, kernel 6.12+). Default want=1 (no batching, no added latency).
    let want = a.u("want", 1);
    let minwait = a.u("minwait_us", 0) as u32;
    loop {
        let mut args = types::SubmitArgs::new().timespec(&ts);
        if minwait > 0 {
            args = args.min_wait_usec(minwait);
        }
        match ring.submitter().submit_with_args(want, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => panic!("enter: {e}"),
        }
        waits += 1;
        cqes.clear();
        for c in ring.completion() {
            cqes.push((c.user_data(), c.result(), c.flags()));
        }
        ncqe += cqes.len() as u64;
        let mut br_dirty = false;
        for &(ud, res, flags) in &cqes {
            let i = (ud & 0xffff_ffff) as usize;
            if ud & OP_SEND != 0 {
                slots[i].send_inflight = false;
                if res > 0 {
                    dout += 1;
                } else {
                    errs += 1;
                }
                continue;
            }
            // recv completion
            if res >= 0 {
                din += 1;
            } else if res != -libc::ENOBUFS {
                errs += 1;
                if errs < 5 {
                    eprintln!("recv err {} on {}", res, i);
                }
            }
            if mshot {
                let br = br.as_mut().unwrap();
                if let Some(bid) = cqueue::buffer_select(flags) {
                    if echo && res > 0 {
                        let data = &br.buf(bid)[..res as usize];
                        let out = types::RecvMsgOut::parse(data, &mtmpl).expect("parse");
                        let s = &mut slots[i];
                        if s.send_inflight {
                            drops += 1;
                        } else {
                            let p = out.payload_data();
                            s.sbuf[..p.len()].copy_from_slice(p);
                            s.sname = unsafe { std::ptr::read_unaligned(out.name_data().as_ptr() as *const libc::sockaddr_in) };
                            s.send_inflight = true;
                            let e = tgt!(fixed, i, socks[i].0, |t| opcode::Send::new(t, s.sbuf.as_ptr(), p.len() as u32)
                                .dest_addr(&s.sname as *const _ as *const libc::sockaddr)
                                .dest_addr_len(SALEN)
                                .build());
                            push(&mut ring, e.user_data(OP_SEND | i as u64));
                        }
                    }
                    br.add(bid);
                    br_dirty = true;
                }
                if !cqueue::more(flags) {
                    rearms += 1;
                    arm(&mut ring, &mut slots, i);
                }
            } else {
                if echo && res > 0 {
                    let s = &mut slots[i];
                    if s.send_inflight {
                        drops += 1;
                    } else {
                        let len = res as usize;
                        let (rb, sb) = (s.rbuf.as_ptr(), s.sbuf.as_mut_ptr());
                        unsafe { std::ptr::copy_nonoverlapping(rb, sb, len) };
                        s.sname = s.rname;
                        s.siov.iov_len = len;
                        s.smsg.msg_namelen = SALEN;
                        s.send_inflight = true;
                        let e = tgt!(fixed, i, socks[i].0, |t| opcode::SendMsg::new(t, &s.smsg).build());
                        push(&mut ring, e.user_data(OP_SEND | i as u64));
                    }
                }
                arm(&mut ring, &mut slots, i);
            }
        }
        if br_dirty {
            br.as_ref().unwrap().publish();
        }
        if meter.check([din, dout, waits, ncqe]) {
            eprintln!("errs={errs} multishot_rearms={rearms} drops={drops}");
            break;
        }
    }
}

// ---------------------------------------------------------------- send server
fn send_server(a: &Args) {
    let n = a.u("n", 2000);
    let mode = a.s("mode", "sendto");
    let fixed = a.u("fixed", 0) == 1;
    let rate = a.f("rate", 20.0);
    let sink = read_ports(&a.s("sinkfile", "/tmp/sink"))[0];
    let dst = sa_in(sink);
    let socks: Vec<(RawFd, u16)> = (0..n).map(|_| udp_socket(0)).collect();
    let payload = [0x5au8; PAYLOAD];
    let per_tick = n as f64 * rate / 1000.0; // per 1 ms
    let mut ring = if mode.starts_with("u-") { Some(make_ring(a, 1024)) } else { None };
    if fixed {
        let fds: Vec<RawFd> = socks.iter().map(|s| s.0).collect();
        ring.as_ref().unwrap().submitter().register_files(&fds).expect("register_files");
    }
    let mut msg: libc::msghdr = unsafe { zeroed() };
    let mut iov = libc::iovec { iov_base: payload.as_ptr() as _, iov_len: PAYLOAD };
    msg.msg_name = &dst as *const _ as _;
    msg.msg_namelen = SALEN;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let (mut dout, mut waits, mut nev, mut errs) = (0u64, 0u64, 0u64, 0u64);
    let mut meter = Meter::new(a, format!("kind=send mode={} n={} fixed={} taskrun={}", mode, n, fixed as u8, a.s("taskrun", "defer")));
    let mut pacer = Pacer::new(1_000_000);
    let mut acc = 0.0;
    let mut rr = 0usize;
    loop {
        let d = pacer.tick();
        acc += per_tick * d as f64 / 1e6;
        let k = acc as usize;
        acc -= k as f64;
        match ring.as_mut() {
            None => {
                for _ in 0..k {
                    let fd = socks[rr].0;
                    rr = (rr + 1) % n;
                    let r = unsafe { libc::sendto(fd, payload.as_ptr() as _, PAYLOAD, 0, &dst as *const _ as *const libc::sockaddr, SALEN) };
                    if r > 0 {
                        dout += 1
                    } else {
                        errs += 1
                    }
                }
                waits += 1;
                nev += k as u64;
            }
            Some(ring) => {
                for _ in 0..k {
                    let i = rr;
                    let fd = socks[i].0;
                    rr = (rr + 1) % n;
                    let e = if mode == "u-sendmsg" {
                        tgt!(fixed, i, fd, |t| opcode::SendMsg::new(t, &msg).build())
                    } else {
                        tgt!(fixed, i, fd, |t| opcode::Send::new(t, payload.as_ptr(), PAYLOAD as u32)
                            .dest_addr(&dst as *const _ as *const libc::sockaddr)
                            .dest_addr_len(SALEN)
                            .build())
                    };
                    push(ring, e.user_data(OP_SEND | i as u64));
                }
                ring.submit_and_wait(k).unwrap();
                waits += 1;
                for c in ring.completion() {
                    nev += 1;
                    if c.result() > 0 {
                        dout += 1
                    } else {
                        errs += 1
                    }
                }
            }
        }
        if meter.check([0, dout, waits, nev]) {
            eprintln!("errs={errs}");
            break;
        }
    }
}

// ---------------------------------------------------------------- load generator & sink
fn load(a: &Args) {
    let ports = read_ports(&a.s("portfile", "/tmp/ports"));
    let n = ports.len();
    let rate = a.f("rate", 20.0);
    let secs = a.f("secs", 6.0);
    let reply = a.u("reply", 0) == 1;
    let (fd, _) = udp_socket(32 << 20);
    let addrs: Vec<libc::sockaddr_in> = ports.iter().map(|&p| sa_in(p)).collect();
    let payload = [0xa5u8; PAYLOAD];
    let mut iov = libc::iovec { iov_base: payload.as_ptr() as _, iov_len: PAYLOAD };
    let per_tick = n as f64 * rate / 1000.0;
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; 256];
    let mut rm = make_mmsg(64);
    let t_end = now_ns() + (secs * 1e9) as u64;
    let mut pacer = Pacer::new(a.u("tick_us", 1000) as u64 * 1000);
    let (mut acc, mut rr, mut sent, mut got, mut late) = (0.0, 0usize, 0u64, 0u64, 0u64);
    while pacer.next < t_end {
        if now_ns() > pacer.next + 2_000_000 {
            late += 1;
        }
        let d = pacer.tick();
        acc += per_tick * d as f64 / 1e6;
        let k = (acc as usize).min(256);
        acc -= k as f64;
        for h in hdrs[..k].iter_mut() {
            h.msg_hdr.msg_name = &addrs[rr] as *const _ as _;
            h.msg_hdr.msg_namelen = SALEN;
            h.msg_hdr.msg_iov = &mut iov;
            h.msg_hdr.msg_iovlen = 1;
            rr = (rr + 1) % n;
        }
        let mut off = 0;
        while off < k {
            let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr().add(off), (k - off) as u32, 0) };
            if r <= 0 {
                break;
            }
            off += r as usize;
        }
        sent += off as u64;
        if reply {
            loop {
                reset_mmsg(&mut rm);
                let r = unsafe { libc::recvmmsg(fd, rm.hdrs.as_mut_ptr(), 64, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
                if r <= 0 {
                    break;
                }
                got += r as u64;
            }
        }
    }
    eprintln!("load: sent={sent} replies={got} late_ticks={late}");
}

fn sink(a: &Args) {
    let (fd, port) = udp_socket(32 << 20);
    set_blocking(fd);
    let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
    unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv as *const _ as _, size_of::<libc::timeval>() as u32) };
    write_ports(&a.s("portfile", "/tmp/sink"), &[port]);
    let t_end = now_ns() + (a.f("secs", 8.0) * 1e9) as u64;
    let mut m = make_mmsg(64);
    let mut got = 0u64;
    while now_ns() < t_end {
        reset_mmsg(&mut m);
        let r = unsafe { libc::recvmmsg(fd, m.hdrs.as_mut_ptr(), 64, libc::MSG_WAITFORONE, std::ptr::null_mut()) };
        if r > 0 {
            got += r as u64;
        }
    }
    eprintln!("sink: got={got}");
}

fn main() {
    raise_nofile();
    let argv: Vec<String> = std::env::args().collect();
    let cmd = argv.get(1).cloned().unwrap_or_default();
    let a = Args(argv[2..].iter().filter_map(|s| s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect());
    let mode = a.s("mode", "");
    match cmd.as_str() {
        "recvsrv" | "echosrv" => {
            let echo = cmd == "echosrv";
            if mode.starts_with("epoll") {
                epoll_server(&a, echo)
            } else {
                uring_server(&a, echo)
            }
        }
        "sendsrv" => send_server(&a),
        "load" => load(&a),
        "sink" => sink(&a),
        _ => eprintln!("usage: see src/main.rs header"),
    }
}
