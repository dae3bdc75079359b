//! Prometheus metrics of `latchkey serve`, on a listener of their own
//! (`--metrics-listen`, off by default): the public listener never serves them, so
//! they are only as reachable as the operator binds them (loopback, a private network).
//!
//! Per endpoint (the core's `ENDPOINTS` labels, so a scanner's random paths cannot
//! grow the label set): requests by status class and a latency histogram; per outcome
//! (`OUTCOMES`: valid and invalid resolves, refresh-token reuse, rate limiting, store
//! errors): a counter. Every series is a relaxed atomic shared by the worker threads:
//! recording a request is a few uncontended increments.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use latchkey_endpoints::response::{ENDPOINTS, OUTCOMES};

/// Upper bounds of the latency buckets, in seconds: from a cached resolve (tens of
/// microseconds) to a slow login (an argon2 hash, a busy disk).
const BUCKETS: [f64; 14] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Status classes counted: 2xx, 3xx, 4xx, 5xx.
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

struct Endpoint {
    by_class: [AtomicU64; 4],
    /// Cumulative counts are computed when rendered; each request adds to one bucket
    /// (the last slot: above every bound).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    micros_sum: AtomicU64,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            by_class: Default::default(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            micros_sum: AtomicU64::new(0),
        }
    }
}

/// Every series of the server.
pub struct Metrics {
    endpoints: Vec<Endpoint>,
    outcomes: Vec<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            endpoints: ENDPOINTS.iter().map(|_| Endpoint::default()).collect(),
            outcomes: OUTCOMES.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn record(&self, endpoint: &str, status: u16, elapsed: Duration, outcome: Option<&str>) {
        let Some(at) = ENDPOINTS.iter().position(|e| *e == endpoint) else {
            return;
        };
        let e = &self.endpoints[at];
        let class = usize::from(status / 100).clamp(2, 5) - 2;
        e.by_class[class].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        e.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        e.micros_sum.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Some(o) = outcome.and_then(|o| OUTCOMES.iter().position(|x| *x == o)) {
            self.outcomes[o].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP latchkey_build_info The running version.");
        let _ = writeln!(out, "# TYPE latchkey_build_info gauge");
        let _ = writeln!(out, "latchkey_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, "# HELP latchkey_requests_total Requests answered, by endpoint and status class.");
        let _ = writeln!(out, "# TYPE latchkey_requests_total counter");
        for (name, e) in ENDPOINTS.iter().zip(&self.endpoints) {
            for (class, n) in CLASSES.iter().zip(&e.by_class) {
                let _ = writeln!(
                    out,
                    "latchkey_requests_total{{endpoint=\"{name}\",status=\"{class}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(out, "# HELP latchkey_request_duration_seconds Time to answer, by endpoint.");
        let _ = writeln!(out, "# TYPE latchkey_request_duration_seconds histogram");
        for (name, e) in ENDPOINTS.iter().zip(&self.endpoints) {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(&e.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "latchkey_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += e.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "latchkey_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"+Inf\"}} {cumulative}"
            );
            let sum = e.micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "latchkey_request_duration_seconds_sum{{endpoint=\"{name}\"}} {sum}");
            let _ = writeln!(out, "latchkey_request_duration_seconds_count{{endpoint=\"{name}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "# HELP latchkey_outcomes_total What requests came to: resolves valid, invalid or anonymous, \
             refresh-token reuse, rate limiting, store errors, other unavailability."
        );
        let _ = writeln!(out, "# TYPE latchkey_outcomes_total counter");
        for (name, n) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(out, "latchkey_outcomes_total{{outcome=\"{name}\"}} {}", n.load(Ordering::Relaxed));
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` from a thread of its own, until the process ends.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> Result<SocketAddr, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("latchkey-metrics".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let metrics = metrics.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let metrics = metrics.clone();
                            async move {
                                let mut resp = if req.uri().path() == "/metrics" && req.method() == http::Method::GET {
                                    let mut r = hyper::Response::new(Full::new(Bytes::from(metrics.render())));
                                    r.headers_mut().insert(
                                        "content-type",
                                        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                                    );
                                    r
                                } else {
                                    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"not found\n")));
                                    *r.status_mut() = http::StatusCode::NOT_FOUND;
                                    r
                                };
                                resp.headers_mut().insert("cache-control", http::HeaderValue::from_static("no-store"));
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_histograms_and_outcomes() {
        let m = Metrics::default();
        m.record("/_resolver/resolve", 200, Duration::from_micros(80), Some("resolve_valid"));
        m.record("/_resolver/resolve", 200, Duration::from_millis(3), Some("resolve_invalid"));
        m.record("/oauth2/token", 429, Duration::from_millis(1), Some("rate_limited"));
        m.record("not-a-label", 200, Duration::from_millis(1), None);
        let text = m.render();
        assert!(text.contains("latchkey_requests_total{endpoint=\"/_resolver/resolve\",status=\"2xx\"} 2"));
        assert!(text.contains("latchkey_requests_total{endpoint=\"/oauth2/token\",status=\"4xx\"} 1"));
        assert!(
            text.contains("latchkey_request_duration_seconds_bucket{endpoint=\"/_resolver/resolve\",le=\"0.0001\"} 1")
        );
        assert!(
            text.contains("latchkey_request_duration_seconds_bucket{endpoint=\"/_resolver/resolve\",le=\"0.005\"} 2")
        );
        assert!(text.contains("latchkey_request_duration_seconds_count{endpoint=\"/_resolver/resolve\"} 2"));
        assert!(text.contains("latchkey_outcomes_total{outcome=\"resolve_valid\"} 1"));
        assert!(text.contains("latchkey_outcomes_total{outcome=\"rate_limited\"} 1"));
        assert!(!text.contains("not-a-label"));
    }
}
