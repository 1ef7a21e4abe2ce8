//! The counters in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;

use super::{Metrics, ERROR_SLOTS};

impl Metrics {
    /// The counters in the Prometheus text exposition format, names prefixed `floe_`.
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP floe_{name} {help}");
            let _ = writeln!(out, "# TYPE floe_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "floe_{name}{labels} {value}");
            }
        };
        family(
            "allocations_active",
            "gauge",
            "TURN allocations that exist now.",
            &[("", s.allocations_active)],
        );
        family(
            "allocations_created_total",
            "counter",
            "TURN allocations created since start.",
            &[("", s.allocations_created)],
        );
        family(
            "allocations_ended_by_operator_total",
            "counter",
            "TURN allocations an operator ended through the admin API.",
            &[("", s.allocations_ended_by_operator)],
        );
        family(
            "relayed_packets_total",
            "counter",
            "Packets relayed, by direction.",
            &[
                (r#"{direction="client_to_peer"}"#, s.packets_to_peer),
                (r#"{direction="peer_to_client"}"#, s.packets_to_client),
            ],
        );
        family(
            "relayed_bytes_total",
            "counter",
            "Payload bytes relayed, by direction.",
            &[
                (r#"{direction="client_to_peer"}"#, s.bytes_to_peer),
                (r#"{direction="peer_to_client"}"#, s.bytes_to_client),
            ],
        );
        family(
            "auth_failures_total",
            "counter",
            "Requests refused for bad or missing credentials.",
            &[("", s.auth_failures)],
        );
        family(
            "binding_requests_total",
            "counter",
            "STUN Binding requests answered.",
            &[("", s.binding_requests)],
        );
        const LABELS: [&str; ERROR_SLOTS] = [
            r#"{code="400"}"#,
            r#"{code="401"}"#,
            r#"{code="403"}"#,
            r#"{code="420"}"#,
            r#"{code="437"}"#,
            r#"{code="438"}"#,
            r#"{code="441"}"#,
            r#"{code="442"}"#,
            r#"{code="486"}"#,
            r#"{code="487"}"#,
            r#"{code="500"}"#,
            r#"{code="508"}"#,
            r#"{code="other"}"#,
        ];
        let samples: [(&str, u64); ERROR_SLOTS] =
            std::array::from_fn(|i| (LABELS[i], s.error_responses[i]));
        family(
            "error_responses_total",
            "counter",
            "STUN error responses sent, by error code.",
            &samples,
        );
        family(
            "unauth_responses_dropped_total",
            "counter",
            "Error responses to unauthenticated requests not sent: over --unauth-rate.",
            &[("", s.unauth_dropped)],
        );
        family(
            "relay_dropped_packets_total",
            "counter",
            "Relayed packets dropped over a bandwidth limit.",
            &[
                (r#"{limit="max_bps"}"#, s.over_max_bps[0]),
                (r#"{limit="total_bps"}"#, s.over_total_bps[0]),
            ],
        );
        family(
            "relay_dropped_bytes_total",
            "counter",
            "Payload bytes of relayed packets dropped over a bandwidth limit.",
            &[
                (r#"{limit="max_bps"}"#, s.over_max_bps[1]),
                (r#"{limit="total_bps"}"#, s.over_total_bps[1]),
            ],
        );
        family(
            "cap_refusals_total",
            "counter",
            "Requests refused with 508 at a per-allocation cap.",
            &[
                (r#"{cap="permissions"}"#, s.permissions_refused),
                (r#"{cap="channels"}"#, s.channels_refused),
            ],
        );
        family(
            "tcp_connections_active",
            "gauge",
            "TCP and TLS client connections open now.",
            &[("", s.tcp_connections_active)],
        );
        family(
            "tcp_connections_refused_total",
            "counter",
            "TCP and TLS connections closed on accept, by the cap that was reached.",
            &[
                (r#"{limit="per_ip"}"#, s.tcp_refused_per_ip),
                (r#"{limit="total"}"#, s.tcp_refused_total),
            ],
        );
        family(
            "tcp_connections_closed_total",
            "counter",
            "TCP and TLS connections closed by the server, by reason.",
            &[
                (r#"{reason="not_stun"}"#, s.tcp_closed_not_stun),
                (r#"{reason="timeout"}"#, s.tcp_closed_timeout),
            ],
        );
        family(
            "tcp_dropped_messages_total",
            "counter",
            "Messages for TCP and TLS clients dropped because the client's write queue was full.",
            &[("", s.tcp_dropped_messages)],
        );
        family(
            "tcp_dropped_bytes_total",
            "counter",
            "Bytes of the messages for TCP and TLS clients dropped because the write queue was full.",
            &[("", s.tcp_dropped_bytes)],
        );
        family(
            "config_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP, POST /reload), by result.",
            &[
                (r#"{result="ok"}"#, s.config_reloads[0]),
                (r#"{result="error"}"#, s.config_reloads[1]),
            ],
        );
        family(
            "tls_reloads_total",
            "counter",
            "TLS certificate reloads after their files changed on disk, by result.",
            &[
                (r#"{result="ok"}"#, s.tls_reloads[0]),
                (r#"{result="error"}"#, s.tls_reloads[1]),
            ],
        );
        self.inner.users.render(&mut out);
        out
    }
}
