//! The client side of the API: `dht put|get|announce|peers|lookup --node URL` act through a
//! running node's HTTP API instead of joining the network themselves.
//!
//! It is hyper-util's client, which the tree already has through axum's hyper: a one-shot
//! HTTP/1.1 request to a loopback address needs nothing more (no TLS, no redirects, no pool
//! worth tuning), so no second HTTP stack is brought in for it.

use anyhow::{anyhow, bail, Context};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The largest answer read from a node, in bytes (a lookup's trace is the largest, tens of
/// KiB).
pub const RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A running node's API at a base URL such as `http://127.0.0.1:8080`.
pub struct ApiClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A non-2xx answer: the status and the node's `error` message.
#[derive(Debug)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The node's message.
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the node answered {}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiFailure {}

impl ApiClient {
    /// A client for the API at `url` (`http://HOST:PORT`, a trailing `/` allowed).
    pub fn new(url: &str) -> anyhow::Result<ApiClient> {
        let base = url.trim_end_matches('/');
        if !base.starts_with("http://") {
            bail!("--node {url}: expected a URL such as http://127.0.0.1:8080 (plain http)");
        }
        base.parse::<hyper::Uri>()
            .with_context(|| format!("--node {url} is not a URL"))?;
        Ok(ApiClient {
            base: base.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request to `path` (from `/api/v1/...`) and returns the JSON answer; a non-2xx
    /// answer is an [`ApiFailure`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> anyhow::Result<Value> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let body = match body {
            Some((bytes, content_type)) => {
                req = req.header(hyper::header::CONTENT_TYPE, content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req.body(body).context("cannot build the request")?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the node's answer failed: {e}"))?
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the node's answer ({status}) is not JSON: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })?;
        if !status.is_success() {
            let message = json
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_string();
            return Err(ApiFailure { status, message }.into());
        }
        Ok(json)
    }
}

/// Whether `e` is the node's 404 (nothing found).
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>()
        .is_some_and(|f| f.status == StatusCode::NOT_FOUND)
}
