//! ng over HTTP and WebSocket (`--listen-http`), with axum.
//!
//! - `POST /ng`: cookie-framed body, content type `application/x-rtpengine-ng`.
//! - `POST /ng-plain`: body without cookie, bencode or JSON, content type
//!   `application/x-rtpengine-ng` or `application/json` (as upstream).
//! - `GET /ping`: `pong`.
//! - `GET /cli/<command>`: the CLI ([`crate::cli`]), as upstream.
//! - `GET /metrics`: Prometheus text exposition ([`crate::metrics`]).
//! - WebSocket upgrade on any path: subprotocol `ng.rtpengine.com` (cookie
//!   framing; also the default when the client names none) or
//!   `ng-plain.rtpengine.com`; binary and text frames, answered in kind.
//!
//! Bodies and messages are limited to [`MAX_MESSAGE`]; larger ones are
//! refused (413, or the WebSocket is closed).
//!
//! **Browsers.** A web page must not be able to drive the daemon through a
//! browser that can reach it (upstream does not guard against this). Every
//! request that carries an `Origin` header (browsers send one with POSTs,
//! fetches and WebSocket upgrades) or `Sec-Fetch-Site: cross-site` /
//! `same-site` (image and link loads of `/cli/…`) is refused with 403,
//! unless its origin is allowed with `--http-allow-origin`; SIP proxies and
//! scripts send neither. The ng endpoints also insist on their media types,
//! so a plain HTML form (`text/plain`, form types) cannot post to them.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, State};
use axum::http::{header, HeaderMap, Request, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use axum::Router;
use tracing::{debug, info, warn};

use super::dispatch::Control;
use crate::cli::Cli;
use crate::metrics::Metrics;
use crate::ng::frame::MAX_MESSAGE;

const NG_CONTENT_TYPE: &str = "application/x-rtpengine-ng";
const PROTO_NG: &str = "ng.rtpengine.com";
const PROTO_PLAIN: &str = "ng-plain.rtpengine.com";

/// Binds the listener.
pub fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    super::tcp_listener(addr).with_context(|| format!("binding ng HTTP socket {addr}"))
}

/// Serves HTTP and WebSocket until cancelled. Browser requests are only
/// served from `allowed_origins` (`*`: any).
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<Control>,
    cli: Arc<Cli>,
    metrics: Arc<Metrics>,
    allowed_origins: Arc<[String]>,
    bounds: super::limits::Bounds,
) -> anyhow::Result<()> {
    info!(local = %listener.local_addr()?, "Listening for ng over HTTP/WebSocket");
    let app = router(control, cli, metrics, allowed_origins);
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    // `tap_io` (a no-op) gives the wrapped listener axum's ConnectInfo of
    // the peer address.
    let listener =
        super::limits::LimitedListener::new(listener, super::limits::Limits::new(bounds), "HTTP")
            .tap_io(|_| {});
    axum::serve(listener, app).await.context("HTTP server")
}

/// The routes and layers of the HTTP listener. Handlers expect the peer
/// address as [`ConnectInfo`] (from [`serve`], or a layer that sets it).
pub fn router(
    control: Arc<Control>,
    cli: Arc<Cli>,
    metrics: Arc<Metrics>,
    allowed_origins: Arc<[String]>,
) -> Router {
    Router::new()
        .route("/ng", post(ng))
        .route("/ng-plain", post(ng_plain))
        .route("/ping", get(|| async { "pong" }))
        .route("/cli/{*command}", get(cli_command))
        .route("/metrics", get(metrics_text))
        .fallback(websocket)
        .layer(middleware::from_fn_with_state(allowed_origins, browsers))
        .layer(middleware::from_fn(sources))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE))
        .with_state(Shared {
            control,
            cli,
            metrics,
        })
}

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    control: Arc<Control>,
    cli: Arc<Cli>,
    metrics: Arc<Metrics>,
}

impl FromRef<Shared> for Arc<Control> {
    fn from_ref(s: &Shared) -> Self {
        Arc::clone(&s.control)
    }
}

impl FromRef<Shared> for Arc<Cli> {
    fn from_ref(s: &Shared) -> Self {
        Arc::clone(&s.cli)
    }
}

impl FromRef<Shared> for Arc<Metrics> {
    fn from_ref(s: &Shared) -> Self {
        Arc::clone(&s.metrics)
    }
}

/// `GET /metrics`.
async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => {
            warn!(error = %e, "Failed to render metrics");
            plain_error(StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable")
        }
    }
}

/// `GET /cli/<command>`: the CLI over HTTP, as upstream (`+` and `%20` are
/// spaces; the reply is the CLI's text, always 200).
async fn cli_command(State(cli): State<Arc<Cli>>, uri: Uri) -> Response {
    let raw = uri.path().strip_prefix("/cli/").unwrap_or_default();
    let spaced = raw.replace('+', " ");
    let line = percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy();
    let reply = cli.run(&line);
    ([(header::CONTENT_TYPE, "text/plain")], reply).into_response()
}

/// Refuses requests a browser makes on behalf of a page from an origin not
/// in `allowed` (see the module documentation).
async fn browsers(
    State(allowed): State<Arc<[String]>>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let h = req.headers();
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let cross = h
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
        });
    let permitted = |o: &str| {
        allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
    };
    let refused = match origin {
        Some(o) => !permitted(o),
        None => cross && !allowed.iter().any(|a| a == "*"),
    };
    if refused {
        // A page can make requests in a loop: warn once a minute at most.
        static WARNED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
        let mut last = WARNED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
            *last = Some(std::time::Instant::now());
            warn!(origin = origin.unwrap_or("-"), path = %req.uri().path(), "Refused a browser request from an origin not allowed (--http-allow-origin; logged once a minute)");
        }
        return plain_error(StatusCode::FORBIDDEN, "origin not allowed");
    }
    next.run(req).await
}

/// Refuses requests from sources outside `--ng-allow-from`.
async fn sources(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    if !super::sources::allows(peer.ip()) {
        return plain_error(StatusCode::FORBIDDEN, "source not allowed");
    }
    next.run(req).await
}

/// The request's media type (without parameters), lower case.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

fn plain_error(status: StatusCode, msg: &str) -> Response {
    (status, format!("{msg}\n")).into_response()
}

async fn ng(
    State(control): State<Arc<Control>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if media_type(&headers).as_deref() != Some(NG_CONTENT_TYPE) {
        return plain_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("POST /ng wants Content-Type: {NG_CONTENT_TYPE}"),
        );
    }
    if body.is_empty() {
        return plain_error(StatusCode::BAD_REQUEST, "empty body");
    }
    match control.handle_framed(&body, peer).await {
        Some(reply) => ([(header::CONTENT_TYPE, NG_CONTENT_TYPE)], reply).into_response(),
        None => plain_error(StatusCode::BAD_REQUEST, "no cookie in message"),
    }
}

async fn ng_plain(
    State(control): State<Arc<Control>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !matches!(
        media_type(&headers).as_deref(),
        Some(NG_CONTENT_TYPE | "application/json")
    ) {
        return plain_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("POST /ng-plain wants Content-Type: {NG_CONTENT_TYPE} or application/json"),
        );
    }
    if body.is_empty() {
        return plain_error(StatusCode::BAD_REQUEST, "empty body");
    }
    let ct = if body.first() == Some(&b'{') {
        "application/json"
    } else {
        NG_CONTENT_TYPE
    };
    let reply = control.handle_body(&body, peer).await;
    ([(header::CONTENT_TYPE, ct)], reply).into_response()
}

async fn websocket(
    State(control): State<Arc<Control>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return plain_error(StatusCode::NOT_FOUND, "not found");
    };
    ws.protocols([PROTO_NG, PROTO_PLAIN])
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let plain = socket
                .protocol()
                .is_some_and(|p| p.as_bytes() == PROTO_PLAIN.as_bytes());
            if let Err(e) = ws_session(socket, &control, plain, peer).await {
                warn!(error = %e, "WebSocket closed");
            }
        })
}

async fn ws_session(
    mut socket: WebSocket,
    control: &Control,
    plain: bool,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    debug!(plain, "WebSocket ng session");
    while let Some(msg) = socket.recv().await {
        let (data, text) = match msg? {
            Message::Binary(b) => (b.to_vec(), false),
            Message::Text(t) => (t.as_bytes().to_vec(), true),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let reply = if plain {
            Some(control.handle_body(&data, peer).await)
        } else {
            control.handle_framed(&data, peer).await
        };
        let Some(reply) = reply else { continue };
        let out = if text {
            Message::Text(String::from_utf8_lossy(&reply).into_owned().into())
        } else {
            Message::Binary(reply.into())
        };
        socket.send(out).await?;
    }
    Ok(())
}
