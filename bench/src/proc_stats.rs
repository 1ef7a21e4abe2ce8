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
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        t => t as f64,
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

/// This process's CPU time (user + system, all threads) in seconds, at nanosecond
/// resolution (`CLOCK_PROCESS_CPUTIME_ID`).
pub(crate) fn self_cpu() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Busy and total CPU time of the whole machine, all cores, in seconds (`/proc/stat`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MachineCpu {
    pub busy_s: f64,
    pub total_s: f64,
}

pub(crate) fn machine_cpu() -> Option<MachineCpu> {
    parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `cpu` line: user nice system idle iowait irq softirq steal ...; idle and iowait
/// are not busy.
fn parse_machine(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    let t = clock_ticks();
    Some(MachineCpu {
        busy_s: (total - idle) as f64 / t,
        total_s: total as f64 / t,
    })
}

/// Wall time, the tool's CPU, the server's (with `--pid`) and the machine's at one
/// instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub at: Instant,
    pub tool_cpu: f64,
    pub server: Option<ProcSample>,
    pub machine: Option<MachineCpu>,
}

impl Snapshot {
    pub(crate) fn take(pid: Option<u32>) -> Result<Self, String> {
        let server = pid.map(sample).transpose()?;
        Ok(Snapshot {
            at: Instant::now(),
            tool_cpu: self_cpu(),
            server,
            machine: machine_cpu(),
        })
    }
}

/// What happened between two snapshots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval {
    pub wall_s: f64,
    pub tool_cpu_s: f64,
    pub server_cpu_s: Option<f64>,
    /// Share of all the machine's cores that were busy (0 to 1).
    pub machine_busy: Option<f64>,
    /// Cores of CPU time per second the machine had.
    pub machine_cores: Option<f64>,
}

impl Interval {
    pub(crate) fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let wall_s = b.at.duration_since(a.at).as_secs_f64();
        let (machine_busy, machine_cores) = match (a.machine, b.machine) {
            (Some(x), Some(y)) if y.total_s > x.total_s => (
                Some((y.busy_s - x.busy_s) / (y.total_s - x.total_s)),
                Some((y.total_s - x.total_s) / wall_s.max(1e-9)),
            ),
            _ => (None, None),
        };
        Interval {
            wall_s,
            tool_cpu_s: b.tool_cpu - a.tool_cpu,
            server_cpu_s: match (a.server, b.server) {
                (Some(x), Some(y)) => Some(y.cpu_s - x.cpu_s),
                _ => None,
            },
            machine_busy,
            machine_cores,
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
        let m = parse_machine("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let t = clock_ticks();
        assert_eq!(
            m,
            MachineCpu {
                busy_s: 150.0 / t,
                total_s: 1000.0 / t
            }
        );
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss > 0);
        // This process's CPU time moves forward while it spins.
        let before = self_cpu();
        let start = Instant::now();
        while self_cpu() <= before {
            assert!(start.elapsed().as_secs() < 30, "CPU time did not move");
        }
    }
}
