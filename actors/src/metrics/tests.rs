use super::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` raw and returns (status code, headers, body).
async fn http(addr: SocketAddr, request: &str) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap();
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    let code = status[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_ascii_lowercase(), v.to_owned())
        })
        .collect();
    (code, headers, body.to_owned())
}

/// Parses the exposition text: every sample belongs to a family announced by HELP and
/// TYPE lines; returns sample (name with labels) to value.
fn parse_prometheus(text: &str) -> HashMap<String, u64> {
    let mut typed = Vec::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            typed.push(name.to_owned());
        } else if line.starts_with("# HELP ") {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("floe_"), "{line}");
            assert!(typed.iter().any(|t| t == name), "no TYPE for {name}");
            samples.insert(series.to_owned(), value.parse().unwrap());
        }
    }
    samples
}

#[test]
fn counters_count() {
    let m = Metrics::new();
    m.allocation_created();
    m.allocation_created();
    m.allocation_ended();
    m.allocation_ended();
    m.allocation_ended(); // one too many: stays at zero
    m.allocation_ended_by_operator();
    m.relayed_to_peer(3, 300);
    m.relayed_to_client(2, 150);
    m.auth_failure();
    m.binding_request();
    m.error_response(401);
    m.error_response(401);
    m.error_response(508);
    m.error_response(599);
    let mut core = floe::turn::server::ServerCounters::default();
    core.unauth_dropped = 5;
    core.over_bps_packets = 2;
    core.over_bps_bytes = 300;
    core.channels_refused = 1;
    m.core_counters(&core);
    m.over_total_bps(1, 100);
    let s = m.clone().snapshot();
    assert_eq!(s.unauth_dropped, 5);
    assert_eq!((s.over_max_bps, s.over_total_bps), ([2, 300], [1, 100]));
    assert_eq!((s.permissions_refused, s.channels_refused), (0, 1));
    assert_eq!((s.allocations_active, s.allocations_created), (0, 2));
    assert_eq!(s.allocations_ended_by_operator, 1);
    assert_eq!((s.packets_to_peer, s.bytes_to_peer), (3, 300));
    assert_eq!((s.packets_to_client, s.bytes_to_client), (2, 150));
    assert_eq!((s.auth_failures, s.binding_requests), (1, 1));
    assert_eq!(s.error_responses(401), 2);
    assert_eq!(s.error_responses(508), 1);
    assert_eq!(s.error_responses(599), 1);
    assert_eq!(s.error_responses(400), 0);

    m.tcp_connection_opened();
    m.tcp_connection_opened();
    m.tcp_connection_closed();
    m.tcp_refused_per_ip();
    m.tcp_refused_total();
    m.tcp_closed_not_stun();
    m.tcp_closed_timeout();
    m.tcp_closed_timeout();
    m.tcp_dropped(1500);
    m.tcp_dropped(500);
    let s = m.snapshot();
    assert_eq!(s.tcp_connections_active, 1);
    assert_eq!((s.tcp_refused_per_ip, s.tcp_refused_total), (1, 1));
    assert_eq!((s.tcp_closed_not_stun, s.tcp_closed_timeout), (1, 2));
    assert_eq!((s.tcp_dropped_messages, s.tcp_dropped_bytes), (2, 2000));
}

#[test]
fn config_reloads_are_counted_by_result() {
    let m = Metrics::new();
    m.config_reload(true);
    m.config_reload(false);
    m.config_reload(false);
    assert_eq!(m.snapshot().config_reloads, [1, 2]);
    let samples = parse_prometheus(&m.render_prometheus());
    assert_eq!(samples[r#"floe_config_reloads_total{result="ok"}"#], 1);
    assert_eq!(samples[r#"floe_config_reloads_total{result="error"}"#], 2);
    m.tls_reload(true);
    m.tls_reload(false);
    assert_eq!(m.snapshot().tls_reloads, [1, 1]);
    let samples = parse_prometheus(&m.render_prometheus());
    assert_eq!(samples[r#"floe_tls_reloads_total{result="ok"}"#], 1);
    assert_eq!(samples[r#"floe_tls_reloads_total{result="error"}"#], 1);
}

#[test]
fn rendering_is_prometheus_text() {
    let m = Metrics::new();
    m.allocation_created();
    m.relayed_to_client(7, 700);
    m.error_response(438);
    m.error_response(999);
    let samples = parse_prometheus(&m.render_prometheus());
    assert_eq!(samples["floe_allocations_active"], 1);
    assert_eq!(samples["floe_allocations_created_total"], 1);
    assert_eq!(
        samples[r#"floe_relayed_packets_total{direction="peer_to_client"}"#],
        7
    );
    assert_eq!(
        samples[r#"floe_relayed_bytes_total{direction="peer_to_client"}"#],
        700
    );
    assert_eq!(
        samples[r#"floe_relayed_packets_total{direction="client_to_peer"}"#],
        0
    );
    assert_eq!(samples[r#"floe_error_responses_total{code="438"}"#], 1);
    assert_eq!(samples[r#"floe_error_responses_total{code="other"}"#], 1);
    assert_eq!(samples["floe_auth_failures_total"], 0);
    assert_eq!(samples["floe_binding_requests_total"], 0);
    assert_eq!(samples["floe_allocations_ended_by_operator_total"], 0);
    m.tcp_refused_per_ip();
    m.tcp_dropped(100);
    let samples = parse_prometheus(&m.render_prometheus());
    assert_eq!(
        samples[r#"floe_tcp_connections_refused_total{limit="per_ip"}"#],
        1
    );
    assert_eq!(samples["floe_tcp_dropped_bytes_total"], 100);
    assert_eq!(samples["floe_tcp_connections_active"], 0);
    assert_eq!(
        samples.len(),
        3 + 2 + 2 + 2 + COUNTED_ERROR_CODES.len() + 1 + (1 + 2 + 2 + 2) + (1 + 2 + 2 + 1 + 1)
            // config reloads, TLS reloads: ok, error
            + 2
            + 2
            // user="other" in the per-user families, which have no user yet
            + (3 + 2)
    );
    assert_eq!(samples[r#"floe_user_allocations_active{user="other"}"#], 0);
    let alice = m.user_allocation_created("alice");
    alice.relayed(10, 20);
    m.user_unauthorized("mallory");
    let samples = parse_prometheus(&m.render_prometheus());
    assert_eq!(
        samples[r#"floe_user_allocations_created_total{user="alice"}"#],
        1
    );
    assert_eq!(
        samples[r#"floe_user_relayed_bytes_total{user="alice",direction="peer_to_client"}"#],
        20
    );
    assert_eq!(samples[r#"floe_user_unauthorized_total{user="other"}"#], 1);
    // With no labels to give, every user is other.
    let m = Metrics::with_top_users(0);
    m.user_allocation_created("bob");
    assert_eq!(m.user_snapshot("bob"), None);
    assert_eq!(m.user_snapshot(OTHER_USER).unwrap().allocations_created, 1);
}

#[actix_rt::test]
async fn endpoint_serves_metrics_and_404s_the_rest() {
    let metrics = Metrics::new();
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.clone()).unwrap();
    let addr = server.local_addr();
    metrics.allocation_created();
    metrics.relayed_to_peer(10, 1000);

    let (code, headers, body) =
        http(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(code, 200);
    assert!(headers["content-type"].starts_with("text/plain; version=0.0.4"));
    assert_eq!(
        headers["content-length"].parse::<usize>().unwrap(),
        body.len()
    );
    let samples = parse_prometheus(&body);
    assert_eq!(samples["floe_allocations_active"], 1);
    assert_eq!(
        samples[r#"floe_relayed_bytes_total{direction="client_to_peer"}"#],
        1000
    );

    // The counters are live.
    metrics.allocation_created();
    let (_, _, body) = http(addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
    assert_eq!(parse_prometheus(&body)["floe_allocations_active"], 2);

    let (code, headers, body) = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(code, 200);
    assert!(body.is_empty());
    assert!(headers["content-length"].parse::<usize>().unwrap() > 0);

    let (code, _, _) = http(addr, "GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(code, 404);
    let (code, _, _) = http(addr, "GET /metricsx HTTP/1.1\r\n\r\n").await;
    assert_eq!(code, 404);
    let (code, _, _) = http(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(code, 405);
    let (code, _, _) = http(addr, "garbage\r\n\r\n").await;
    assert_eq!(code, 400);

    drop(server);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "stopped when dropped"
    );
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let err = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Metrics::new()).unwrap_err();
    assert!(matches!(err, MetricsError::NoRuntime));
}
