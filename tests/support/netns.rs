//! The NAT lab: network namespaces joined by veth pairs, with kernel NATs built from
//! nftables (tests/nat_lab.rs). Everything lives inside namespaces the lab creates; no
//! interface, address, route or rule is added to the machine's own namespace, so lab
//! traffic never reaches the machine's other interfaces (INTEROP.md's network rule).
//!
//! ```text
//!                    public: 198.18.0.1 on lo (the servers)
//!                  r1 198.18.1.1/24         r2 198.18.2.1/24
//!                      |                         |
//!     nat1: wan 198.18.1.2/24           nat2: wan 198.18.2.2/24
//!           lan 198.19.1.1/24                 lan 198.19.2.1/24
//!                      |                         |
//!     host1: eth0 198.19.1.2/24         host2: eth0 198.19.2.2/24
//! ```
//!
//! Every lab address is in 198.18.0.0/15 (RFC 2544's benchmarking block), which a TURN
//! server denies as a peer by default; the lab's server allows it explicitly. The public
//! namespace routes to both LANs, so without NAT (`Nat::None`) a host is reachable at its
//! own address; with a NAT its router drops every new connection from the WAN side, so
//! only the NAT's mappings reach it. IPv6 is off in every namespace.
//!
//! Names are `floelab<pid>x<n>-<role>`, unique per process and lab; a lab deletes its
//! namespaces when dropped (also while unwinding from a panic), and the first lab of a
//! process deletes those left behind by lab processes that no longer run.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::{find_in_path, peer_available, run, Finished, TempDir};

/// The prefix of every lab namespace's name.
const PREFIX: &str = "floelab";
/// Bound on one `ip` or `nft` call; only there to catch hangs.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The servers' address, on the public namespace's loopback.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The block every lab address is in, for a TURN server's `--allow-peer`.
pub const LAB_RANGE: &str = "198.18.0.0/15";

/// What a router does to the traffic of the host behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Routed, no translation, no filtering: the host's address is public.
    None,
    /// Endpoint-independent mapping (RFC 4787 §4.1), address-and-port-dependent filtering
    /// (§5): `masquerade`, which keeps the source port when it can, so one local socket
    /// keeps one mapping towards every destination; conntrack lets only replies to the
    /// 5-tuples the host opened back in.
    Eim,
    /// Address-and-port-dependent mapping, random ports: `masquerade fully-random` picks
    /// a new random port for every new 5-tuple. Filtering as for `Eim`.
    Symmetric,
}

impl Nat {
    /// Every kind, in table order.
    pub const ALL: [Nat; 3] = [Nat::None, Nat::Eim, Nat::Symmetric];

    /// The short name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Nat::None => "none",
            Nat::Eim => "EIM",
            Nat::Symmetric => "symmetric",
        }
    }

    /// The router's nftables ruleset. New connections from the WAN are dropped in a
    /// filter before NAT (priority -150: after conntrack, -200, before DNAT, -100), so
    /// that an unsolicited packet leaves no conntrack entry behind: an entry for it would
    /// make the NAT move the host's later mapping towards that sender to another port.
    fn ruleset(self) -> String {
        let masquerade = match self {
            Nat::None => return "flush ruleset\n".to_string(),
            Nat::Eim => "masquerade",
            Nat::Symmetric => "masquerade fully-random",
        };
        format!(
            "flush ruleset
table ip floe_lab {{
    chain wan_in {{
        type filter hook prerouting priority -150; policy accept;
        iifname \"wan\" ct state new drop
    }}
    chain wan_out {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"wan\" {masquerade}
    }}
}}
"
        )
    }
}

fn tool(name: &str) -> Option<PathBuf> {
    find_in_path(name).or_else(|| {
        ["/usr/sbin", "/sbin"]
            .iter()
            .map(|dir| PathBuf::from(dir).join(name))
            .find(|p| p.is_file())
    })
}

/// `ip` (iproute2).
fn ip() -> &'static PathBuf {
    static IP: OnceLock<PathBuf> = OnceLock::new();
    IP.get_or_init(|| tool("ip").expect("`ip` is installed (checked by require_lab)"))
}

/// `nft` (nftables).
fn nft() -> &'static PathBuf {
    static NFT: OnceLock<PathBuf> = OnceLock::new();
    NFT.get_or_init(|| tool("nft").expect("`nft` is installed (checked by require_lab)"))
}

fn run_ip(args: &[&str]) -> Finished {
    let mut cmd = Command::new(ip());
    cmd.args(args);
    run(cmd, SETUP_TIMEOUT)
}

fn must(finished: Finished) {
    assert!(finished.success(), "NAT lab setup: {}", finished.describe());
}

/// What the lab needs and this machine lacks, found out once per process (tests that
/// ask at the same time must not race on the trial namespace).
fn lab_missing() -> &'static [String] {
    static MISSING: OnceLock<Vec<String>> = OnceLock::new();
    MISSING.get_or_init(find_missing)
}

fn find_missing() -> Vec<String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (network namespaces and nftables need it)".to_string());
    }
    if tool("ip").is_none() {
        missing.push("ip: `apt-get install -y iproute2`".to_string());
    }
    if tool("nft").is_none() {
        missing.push("nft: `apt-get install -y nftables`".to_string());
    }
    if !peer_available("aioice") {
        missing.push(format!("aioice: {}", super::install_hint("aioice")));
    }
    if missing.is_empty() {
        // Root is not always enough (a container without CAP_SYS_ADMIN): try it.
        let name = format!("{PREFIX}{}check", std::process::id());
        let add = run_ip(&["netns", "add", &name]);
        if add.success() {
            let _ = run_ip(&["netns", "del", &name]);
        } else {
            missing.push(format!(
                "permission to create network namespaces: {}",
                add.stderr.trim()
            ));
        }
    }
    missing
}

/// INTEROP.md's rule for the lab: `true` when it can run. When it cannot: with
/// `FLOE_INTEROP=skip`, prints `skipped: ...` and returns `false` (the test returns
/// early); otherwise panics saying what is missing. It never passes silently.
pub fn require_lab() -> bool {
    let missing = lab_missing();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FLOE_INTEROP").as_deref() == Ok("skip") {
        for m in missing {
            println!("skipped: the NAT lab needs {m}");
        }
        return false;
    }
    panic!(
        "the NAT lab cannot run; it needs:\n  {}\n`.ci/run` (as root on Debian) installs \
         everything; or set FLOE_INTEROP=skip to skip it",
        missing.join("\n  ")
    );
}

/// The names of existing lab namespaces.
fn lab_namespaces() -> Vec<String> {
    let list = run_ip(&["netns", "list"]);
    list.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

/// The lab namespaces this process created that still exist (none once its labs are
/// dropped).
pub fn namespaces_of_this_process() -> Vec<String> {
    let mine = format!("{PREFIX}{}x", std::process::id());
    lab_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .collect()
}

/// Deletes the namespaces of lab processes that are gone (killed without unwinding).
fn sweep_stale() {
    for name in lab_namespaces() {
        let pid = name[PREFIX.len()..]
            .split('x')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = run_ip(&["netns", "del", &name]);
            }
        }
    }
}

/// A network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    fn add(name: String) -> Netns {
        must(run_ip(&["netns", "add", &name]));
        let ns = Netns { name };
        // IPv6 off before any interface comes (they inherit `default`), forwarding on.
        ns.must(&[
            "sh",
            "-c",
            "for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 \
                      /proc/sys/net/ipv6/conf/all/disable_ipv6; do \
                 [ -e $f ] && echo 1 > $f; done; \
             echo 1 > /proc/sys/net/ipv4/ip_forward",
        ]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A namespace of its own with loopback only, up and carrying multicast (lo's
    /// MULTICAST flag and a route for 224.0.0.0/4): multicast DNS between processes
    /// that run in it stays in it. Call [`require_lab`] first.
    pub fn isolated() -> Netns {
        static SWEEP: OnceLock<()> = OnceLock::new();
        static ISOLATED: AtomicU32 = AtomicU32::new(0);
        SWEEP.get_or_init(sweep_stale);
        let n = ISOLATED.fetch_add(1, Ordering::Relaxed);
        let ns = Netns::add(format!("{PREFIX}{}x{n}-iso", std::process::id()));
        ns.ip(&["link", "set", "lo", "multicast", "on"]);
        ns.ip(&["route", "add", "224.0.0.0/4", "dev", "lo"]);
        ns
    }

    /// Its name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` run inside this namespace (`ip netns exec NAME program`); add the
    /// arguments.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(ip());
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `args` inside this namespace to completion, stdin closed, bounded by `timeout`.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Finished {
        let mut cmd = self.command(args[0]);
        cmd.args(&args[1..]);
        run(cmd, timeout)
    }

    fn must(&self, args: &[&str]) {
        must(self.run(args, SETUP_TIMEOUT));
    }

    /// `ip -n NAME args`.
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        must(run_ip(&all));
    }

    /// Loads an nftables ruleset (which starts with `flush ruleset`).
    fn load_ruleset(&self, ruleset: &str) {
        let dir = TempDir::new("nat-lab");
        let file = dir.path().join("ruleset.nft");
        std::fs::write(&file, ruleset).expect("writing the ruleset");
        let nft = nft().to_string_lossy().into_owned();
        self.must(&[&nft, "-f", &file.to_string_lossy()]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes its interfaces; a veth pair goes with either end.
        let _ = run_ip(&["netns", "del", &self.name]);
    }
}

/// One side of the lab: a host behind its router.
struct Side {
    nat: Nat,
    router: Netns,
    host: Netns,
}

/// Two hosts, each behind its own router with its own [`Nat`], and a public namespace
/// between the routers where the servers run (at [`SERVER_IP`]).
pub struct NatLab {
    // Dropped in this order: hosts and routers, then the public namespace.
    sides: Vec<Side>,
    public: Netns,
}

impl NatLab {
    /// Builds the lab with `a` as side 0's NAT and `b` as side 1's.
    pub fn new(a: Nat, b: Nat) -> NatLab {
        static SWEEP: OnceLock<()> = OnceLock::new();
        static LABS: AtomicU32 = AtomicU32::new(0);
        SWEEP.get_or_init(sweep_stale);
        let base = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let public = Netns::add(format!("{base}-pub"));
        public.ip(&["addr", "add", &format!("{SERVER_IP}/32"), "dev", "lo"]);
        let mut sides = Vec::new();
        for (i, nat) in [a, b].into_iter().enumerate() {
            let n = i + 1;
            let router = Netns::add(format!("{base}-nat{n}"));
            let host = Netns::add(format!("{base}-host{n}"));
            let (to_router, to_host) = (format!("r{n}"), "lan");
            public.ip(&[
                "link",
                "add",
                &to_router,
                "type",
                "veth",
                "peer",
                "name",
                "wan",
                "netns",
                router.name(),
            ]);
            router.ip(&[
                "link",
                "add",
                to_host,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.name(),
            ]);
            let wan = Self::wan_ip_of(i);
            let host_ip = Self::host_ip_of(i);
            public.ip(&[
                "addr",
                "add",
                &format!("198.18.{n}.1/24"),
                "dev",
                &to_router,
            ]);
            public.ip(&["link", "set", &to_router, "up"]);
            public.ip(&[
                "route",
                "add",
                &format!("198.19.{n}.0/24"),
                "via",
                &wan.to_string(),
            ]);
            router.ip(&["addr", "add", &format!("{wan}/24"), "dev", "wan"]);
            router.ip(&["addr", "add", &format!("198.19.{n}.1/24"), "dev", to_host]);
            router.ip(&["link", "set", "wan", "up"]);
            router.ip(&["link", "set", to_host, "up"]);
            router.ip(&["route", "add", "default", "via", &format!("198.18.{n}.1")]);
            router.load_ruleset(&nat.ruleset());
            host.ip(&["addr", "add", &format!("{host_ip}/24"), "dev", "eth0"]);
            host.ip(&["link", "set", "eth0", "up"]);
            host.ip(&["route", "add", "default", "via", &format!("198.19.{n}.1")]);
            sides.push(Side { nat, router, host });
        }
        NatLab { sides, public }
    }

    fn wan_ip_of(side: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, side as u8 + 1, 2)
    }

    fn host_ip_of(side: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, side as u8 + 1, 2)
    }

    /// The public namespace, where the servers run at [`SERVER_IP`].
    pub fn public(&self) -> &Netns {
        &self.public
    }

    /// The host namespace of side 0 or 1.
    pub fn host(&self, side: usize) -> &Netns {
        &self.sides[side].host
    }

    /// The router namespace of side 0 or 1.
    pub fn router(&self, side: usize) -> &Netns {
        &self.sides[side].router
    }

    /// The NAT of side 0 or 1.
    pub fn nat(&self, side: usize) -> Nat {
        self.sides[side].nat
    }

    /// The address of side 0's or 1's host (its only interface besides loopback).
    pub fn host_ip(&self, side: usize) -> Ipv4Addr {
        Self::host_ip_of(side)
    }

    /// The WAN address of side 0's or 1's router: the host's public address behind a NAT.
    pub fn wan_ip(&self, side: usize) -> Ipv4Addr {
        Self::wan_ip_of(side)
    }

    /// The address the public side sees side 0's or 1's host at.
    pub fn public_ip(&self, side: usize) -> Ipv4Addr {
        match self.nat(side) {
            Nat::None => self.host_ip(side),
            Nat::Eim | Nat::Symmetric => self.wan_ip(side),
        }
    }
}
