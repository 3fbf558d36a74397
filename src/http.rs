//! The HTTP accept loop. `axum::serve` runs hyper without a timer, so a client
//! that opens a connection and never finishes its headers (or goes idle between
//! requests) holds it forever; here hyper gets a timer and a header deadline.

use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// How long a connection may take to send a request's headers, counted from
/// when it connects or finishes the previous response (so also the idle
/// keep-alive limit). Bodies are bounded by the router's request timeout.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` until `stop` is cancelled, then lets in-flight requests finish
/// (each connection closes after its current response).
pub async fn serve(listener: TcpListener, app: Router, header_timeout: Duration, stop: CancellationToken) {
    // HTTP/1.1 only (Slack and API clients speak it): sniffing for HTTP/2 would
    // wait, without any deadline, for a silent client's first bytes.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        // The peer address, as axum's `ConnectInfo`: links trust forwarded headers only from named proxies.
        let svc = Extension(ConnectInfo(peer)).layer(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
