//! `--log-format json`: each event as one JSON object on one line, in the layout of
//! tracing-subscriber's own JSON formatter (which needs a crate this build does without):
//!
//! ```json
//! {"timestamp":"2026-12-05T21:06:39.123456Z","level":"INFO","target":"floe::usage",
//!  "fields":{"message":"allocation ended","user":"alice","bytes_to_peer":15360},
//!  "spans":["serve"]}
//! ```
//!
//! Numbers and booleans stay JSON numbers and booleans; anything else is its `Display`
//! (`%x` fields) or `Debug` text. Records forwarded from the `log` crate carry their own
//! target (`log.target`) instead of `log`.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of `--log-format json`.
pub(super) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let target = fields
            .log_target
            .take()
            .unwrap_or_else(|| meta.target().to_owned());
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), target.into());
        line.insert("fields".into(), Value::Object(fields.map));
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|s| s.name().into()).collect();
            line.insert("spans".into(), spans.into());
        }
        // serde_json escapes control characters: one event is one line.
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[derive(Default)]
struct Fields {
    map: Map<String, Value>,
    log_target: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "log.target" => self.log_target = value.as_str().map(str::to_owned),
            // The rest of a `log` record's metadata says nothing a reader needs.
            name if name.starts_with("log.") => {}
            name => {
                self.map.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_event_is_one_json_object_on_one_line() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("serve");
            let _in = span.enter();
            let addr: std::net::SocketAddr = "127.0.0.1:3478".parse().unwrap();
            tracing::info!(target: "floe::usage", user = %"al\"ice\n", bytes = 15_u64, ok = true, %addr, "allocation ended");
            tracing::warn!(ratio = 0.5, delta = -3_i64, "second\nline");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], "floe::usage");
        assert_eq!(first["spans"], serde_json::json!(["serve"]));
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
        let f = &first["fields"];
        assert_eq!(f["message"], "allocation ended");
        assert_eq!(f["user"], "al\"ice\n");
        assert_eq!(
            (f["bytes"].as_u64(), f["ok"].as_bool()),
            (Some(15), Some(true))
        );
        assert_eq!(f["addr"], "127.0.0.1:3478");
        let f = &lines[1]["fields"];
        assert_eq!(
            (f["ratio"].as_f64(), f["delta"].as_i64()),
            (Some(0.5), Some(-3))
        );
        assert_eq!(f["message"], "second\nline");
    }
}
