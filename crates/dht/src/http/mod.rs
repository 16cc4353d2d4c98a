//! The HTTP API and Prometheus metrics of one or many running nodes (`dht node --http`,
//! `dht devnet --http`), on axum. The routes are listed in docs/http.md.
//!
//! `mod.rs` holds the shared state, the router and the server; `api.rs` the JSON routes;
//! `metrics.rs` the `/metrics` exposition; `error.rs` the JSON error answer; `client.rs` the
//! client that `dht put|get|announce|peers|lookup --node URL` use. Everything here talks to the
//! nodes only through their [`Dht`] handles.

pub mod api;
pub mod client;
pub mod dashboard;
pub mod error;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use dht_node::Dht;
use ed25519_dalek::SigningKey;

use error::ApiError;

/// The largest request body accepted, in bytes; a larger one gets 413. A BEP 44 value is at
/// most 1,000 bytes, so a JSON request carrying one in hex is far below this.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// How long a command started through the API (a lookup, get, put, announce) may run before
/// the request is answered 504.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The nodes one server serves, and what it may sign with.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    nodes: Vec<Dht>,
    /// The key of `dht node --mutable-key`, which signs mutable puts that come without a
    /// signature.
    signing_key: Option<SigningKey>,
}

impl AppState {
    /// State serving `nodes` (at least one; `?node=I` indexes them), signing mutable puts that
    /// come unsigned with `signing_key` if there is one.
    pub fn new(nodes: Vec<Dht>, signing_key: Option<SigningKey>) -> Self {
        assert!(!nodes.is_empty(), "a server serves at least one node");
        AppState {
            inner: Arc::new(Inner { nodes, signing_key }),
        }
    }

    /// Every node served, in index order.
    pub fn nodes(&self) -> &[Dht] {
        &self.inner.nodes
    }

    /// The node with this index, or 404.
    pub fn node(&self, index: Option<usize>) -> Result<&Dht, ApiError> {
        let i = index.unwrap_or(0);
        self.inner.nodes.get(i).ok_or_else(|| {
            ApiError::not_found(format!(
                "no node {i}: this server serves {} (0 to {})",
                self.inner.nodes.len(),
                self.inner.nodes.len() - 1
            ))
        })
    }

    /// The key that signs unsigned mutable puts, if the node was started with one.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.inner.signing_key.as_ref()
    }
}

/// The routes: the JSON API under `/api/v1/`, `/metrics`, and JSON 404 and 405 answers for
/// anything else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(metrics::routes())
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such route (see docs/http.md)") })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                message: "method not allowed on this route (see docs/http.md)".into(),
            }
        })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// Most HTTP connections served at once; a connection past them is closed at once. The API is
/// for a person, a dashboard and their scripts, not for the public. HTTP/1 handles one request
/// at a time per connection, so this also bounds the requests (and the node commands they
/// start) in flight.
pub const CONNECTIONS_MAX: usize = 64;

/// How long a client may take to send a request's headers (on a kept-alive connection, the next
/// request's): a connection that sends nothing is closed after this, so idle or slow clients
/// cannot hold [`CONNECTIONS_MAX`] for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `stop` ends, at most [`CONNECTIONS_MAX`] connections at
/// once, each closed if its headers take longer than [`HEADER_READ_TIMEOUT`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Past the cap the stream is dropped, which closes it.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
        });
    }
}

/// Whether `--http ADDR` may be used: a loopback address always, any other only with
/// `--http-public`, since the API lets whoever reaches it make the node put, announce and look
/// up (and sign with its key, if it has one).
pub fn check_http_addr(addr: SocketAddr, public: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || public {
        return Ok(());
    }
    Err(format!(
        "--http {addr} is not a loopback address: anyone who can reach it could make the node \
         store, announce and look up (and sign with its --mutable-key); pass --http-public too \
         if that is what you want, or use 127.0.0.1"
    ))
}

/// Binds the HTTP listener for `--http ADDR` (after [`check_http_addr`]).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {addr}"))
}

/// The URL a person opens for a listener bound to `addr`.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_pass_without_public() {
        assert!(check_http_addr("127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_http_addr("[::1]:8080".parse().unwrap(), false).is_ok());
        assert!(check_http_addr("0.0.0.0:8080".parse().unwrap(), false).is_err());
        assert!(check_http_addr("192.0.2.1:8080".parse().unwrap(), false).is_err());
        assert!(check_http_addr("0.0.0.0:8080".parse().unwrap(), true).is_ok());
    }
}
