//! The result of a run: an ordered list of named values, printed as an aligned table or
//! as one JSON object (`--json`).

use std::fmt::Write as _;

use super::proc_stats::Interval;

/// A value in a [`Report`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A measurement; non-finite values print as null.
    Float(f64),
    /// A word or address.
    Text(String),
    /// A flag.
    Bool(bool),
    /// Not measured (for example the server's CPU without `--pid`).
    None,
}

/// What one run of `floe-bench` measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    fields: Vec<(&'static str, Value)>,
}

/// A tool using at least this share of a core was the bottleneck.
const SATURATED: f64 = 0.9;
/// With at least this share of all cores busy, the machine was (other processes too).
const MACHINE_SATURATED: f64 = 0.95;

impl Report {
    pub(crate) fn new(workload: &str) -> Self {
        let mut r = Report::default();
        r.text("workload", workload);
        r
    }

    pub(crate) fn set(&mut self, key: &'static str, v: Value) -> &mut Self {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.fields.push((key, v)),
        }
        self
    }

    pub(crate) fn int(&mut self, key: &'static str, v: u64) -> &mut Self {
        self.set(key, Value::Int(v))
    }

    pub(crate) fn float(&mut self, key: &'static str, v: f64) -> &mut Self {
        self.set(key, Value::Float(v))
    }

    pub(crate) fn opt_float(&mut self, key: &'static str, v: Option<f64>) -> &mut Self {
        self.set(key, v.map_or(Value::None, Value::Float))
    }

    pub(crate) fn text(&mut self, key: &'static str, v: impl Into<String>) -> &mut Self {
        self.set(key, Value::Text(v.into()))
    }

    pub(crate) fn flag(&mut self, key: &'static str, v: bool) -> &mut Self {
        self.set(key, Value::Bool(v))
    }

    /// A value by name (tests and callers that post-process).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Rates, CPU per operation and the bottleneck, for `ops` operations (named `unit`)
    /// done in `interval`.
    pub(crate) fn rates(&mut self, unit: &str, ops: u64, interval: &Interval) -> &mut Self {
        let wall = interval.wall_s.max(1e-9);
        self.text("unit", unit)
            .float("seconds", interval.wall_s)
            .int("ops", ops)
            .float("ops_per_s", ops as f64 / wall);
        let tool_share = interval.tool_cpu_s / wall;
        self.float("tool_cpu_s", interval.tool_cpu_s)
            .float("tool_cpu_share", tool_share);
        let server_share = interval.server_cpu_s.map(|c| c / wall);
        self.opt_float("server_cpu_s", interval.server_cpu_s)
            .opt_float("server_cpu_share", server_share)
            .opt_float(
                "server_cpu_us_per_op",
                interval
                    .server_cpu_s
                    .filter(|_| ops > 0)
                    .map(|c| c * 1e6 / ops as f64),
            )
            .opt_float(
                "ops_per_server_cpu_s",
                interval
                    .server_cpu_s
                    .filter(|c| *c > 0.0)
                    .map(|c| ops as f64 / c),
            );
        // What the rest of the machine used: on a shared machine other processes can
        // take the cores neither the tool nor the server could then get.
        let others = match (interval.machine_busy, interval.machine_cores) {
            (Some(busy), Some(cores)) => {
                Some((busy * cores - tool_share - server_share.unwrap_or(0.0)).max(0.0))
            }
            _ => None,
        };
        self.opt_float("machine_cpu_busy_share", interval.machine_busy)
            .opt_float("other_processes_cpu_share", others);
        let bottleneck = if tool_share >= SATURATED {
            "tool"
        } else if server_share.is_some_and(|s| s >= SATURATED) {
            "server"
        } else if interval
            .machine_busy
            .is_some_and(|b| b >= MACHINE_SATURATED)
        {
            "machine"
        } else if server_share.is_some() {
            "neither"
        } else {
            "unknown"
        };
        self.text("bottleneck", bottleneck)
            .flag("tool_saturated", tool_share >= SATURATED)
    }

    /// Prints the report on stdout; with `json`, as one line of JSON.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            print!("{}", self.to_table());
            if matches!(self.get("tool_saturated"), Some(Value::Bool(true))) {
                println!(
                    "note: the tool used at least {:.0}% of a core: it, not the server, set the rate",
                    SATURATED * 100.0
                );
            }
            if matches!(self.get("bottleneck"), Some(Value::Text(t)) if t == "machine") {
                println!(
                    "note: every core was busy, other processes included: the machine, not the server, set the rate"
                );
            }
        }
    }

    /// One JSON object, keys in order.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "\"{k}\":");
            match v {
                Value::Int(n) => {
                    let _ = write!(s, "{n}");
                }
                Value::Float(f) if f.is_finite() => {
                    let _ = write!(s, "{}", round(*f));
                }
                Value::Float(_) | Value::None => s.push_str("null"),
                Value::Bool(b) => {
                    let _ = write!(s, "{b}");
                }
                Value::Text(t) => {
                    s.push('"');
                    for c in t.chars() {
                        match c {
                            '"' => s.push_str("\\\""),
                            '\\' => s.push_str("\\\\"),
                            c if (c as u32) < 0x20 => {
                                let _ = write!(s, "\\u{:04x}", c as u32);
                            }
                            c => s.push(c),
                        }
                    }
                    s.push('"');
                }
            }
        }
        s.push('}');
        s
    }

    /// `key  value` lines, aligned.
    pub fn to_table(&self) -> String {
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut s = String::new();
        for (k, v) in &self.fields {
            let value = match v {
                Value::Int(n) => n.to_string(),
                Value::Float(f) => format!("{}", round(*f)),
                Value::Text(t) => t.clone(),
                Value::Bool(b) => b.to_string(),
                Value::None => "-".into(),
            };
            let _ = writeln!(s, "{k:<width$}  {value}");
        }
        s
    }
}

/// Four significant digits are plenty for a benchmark figure.
fn round(f: f64) -> f64 {
    if f == 0.0 || !f.is_finite() {
        return f;
    }
    let digits = 4 - (f.abs().log10().floor() as i32 + 1);
    let scale = 10f64.powi(digits);
    (f * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_table_keep_the_order_and_escape_text() {
        let mut r = Report::new("relay");
        r.int("ops", 3)
            .float("rate", 1234.5678)
            .text("server", "a\"b")
            .set("cpu", Value::None);
        r.float("nan", f64::NAN).flag("ok", true);
        assert_eq!(
            r.to_json(),
            r#"{"workload":"relay","ops":3,"rate":1235,"server":"a\"b","cpu":null,"nan":null,"ok":true}"#
        );
        assert!(r.to_table().contains("rate      1235\n"));
    }

    #[test]
    fn rates_name_the_bottleneck() {
        let busy_tool = Interval {
            wall_s: 2.0,
            tool_cpu_s: 1.9,
            server_cpu_s: Some(1.0),
            machine_busy: Some(0.5),
            machine_cores: Some(2.0),
        };
        let mut r = Report::new("binding");
        r.rates("requests", 1000, &busy_tool);
        assert_eq!(r.get("ops_per_s"), Some(&Value::Float(500.0)));
        assert_eq!(r.get("server_cpu_us_per_op"), Some(&Value::Float(1000.0)));
        assert_eq!(r.get("bottleneck"), Some(&Value::Text("tool".into())));
        let busy_server = Interval {
            tool_cpu_s: 0.5,
            server_cpu_s: Some(1.95),
            ..busy_tool
        };
        r.rates("requests", 1000, &busy_server);
        assert_eq!(r.get("bottleneck"), Some(&Value::Text("server".into())));
        let busy_machine = Interval {
            server_cpu_s: Some(1.0),
            machine_busy: Some(0.99),
            ..busy_server
        };
        r.rates("requests", 1000, &busy_machine);
        assert_eq!(r.get("bottleneck"), Some(&Value::Text("machine".into())));
        // 0.99 * 2 cores - 0.25 (tool) - 0.5 (server)
        assert_eq!(
            r.get("other_processes_cpu_share"),
            Some(&Value::Float(1.23))
        );
        let no_pid = Interval {
            server_cpu_s: None,
            ..busy_server
        };
        r.rates("requests", 1000, &no_pid);
        assert_eq!(r.get("bottleneck"), Some(&Value::Text("unknown".into())));
        assert_eq!(r.get("server_cpu_s"), Some(&Value::None));
    }
}
