//! CPU time and resident memory of a process, from `/proc`, and the tool's own CPU time.

use std::time::Instant;

/// One reading of a server process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcSample {
    /// utime + stime, all threads, in seconds (clock-tick resolution, usually 10 ms).
    pub cpu_s: f64,
    /// VmRSS in bytes.
    pub rss: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub(crate) fn sample(pid: u32) -> Result<ProcSample, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    let cpu_s = parse_cpu(&stat).ok_or_else(|| format!("cannot parse /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let rss = parse_rss(&status).ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))?;
    Ok(ProcSample { cpu_s, rss })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime (fields 14 and 15) in seconds. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')' come field 3 (state) ... ; utime is field 14, the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// This process's CPU time (user + system) in seconds, at microsecond resolution.
pub(crate) fn self_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Wall time, the tool's CPU and the server's (with `--pid`) at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub at: Instant,
    pub tool_cpu: f64,
    pub server: Option<ProcSample>,
}

impl Snapshot {
    pub(crate) fn take(pid: Option<u32>) -> Result<Self, String> {
        let server = pid.map(sample).transpose()?;
        Ok(Snapshot {
            at: Instant::now(),
            tool_cpu: self_cpu(),
            server,
        })
    }
}

/// What happened between two snapshots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval {
    pub wall_s: f64,
    pub tool_cpu_s: f64,
    pub server_cpu_s: Option<f64>,
}

impl Interval {
    pub(crate) fn between(a: &Snapshot, b: &Snapshot) -> Self {
        Interval {
            wall_s: b.at.duration_since(a.at).as_secs_f64(),
            tool_cpu_s: b.tool_cpu - a.tool_cpu,
            server_cpu_s: match (a.server, b.server) {
                (Some(x), Some(y)) => Some(y.cpu_s - x.cpu_s),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        let cpu = parse_cpu(stat).unwrap();
        assert!((cpu - 300.0 / clock_ticks()).abs() < 1e-9, "{cpu}");
        assert_eq!(
            parse_rss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss > 0);
        assert!(self_cpu() >= 0.0);
    }
}
