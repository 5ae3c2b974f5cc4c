//! The HTTP trigger: hyper server, routing, per-request instances, logging, shutdown.
//!
//! Decision: bodies are never buffered by the harness. The hyper `Incoming` body is handed to
//! wasi-http as the guest's incoming-request body and the guest's outgoing body is returned to
//! hyper as a stream, so memory per request is bounded by wasi-http's chunk buffers. The guest
//! runs in its own task: a trap before `response-outparam.set` answers 500 (503 when the
//! request deadline stopped it), a trap afterwards aborts that response only; the server
//! keeps serving either way. Slow clients and stuck guests are bounded by `crate::limits`
//! (request heads, idle bodies, instance slots, the request deadline).

use crate::app::{App, wt};
use crate::limits::{DeadlineExceeded, IdleTimeoutBody, within_deadline};
use crate::routing::spin_headers;
use anyhow::Result;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A running server (HTTP and cron); stop it with [`RunningApp::shutdown`].
pub struct RunningApp {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningApp {
    /// `http://<listen addr>` without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s) and stops cron.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Resolves when the server stops on its own (it only stops via `shutdown`).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// A host-made answer (no route, a trap): status only and an empty body, as Spin answers.
fn empty_response(status: StatusCode) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

impl App {
    /// Binds `listen` (e.g. `127.0.0.1:0`) and serves HTTP triggers and cron schedules.
    pub async fn serve(&self, listen: &str) -> Result<RunningApp> {
        let listener = TcpListener::bind(listen).await?;
        self.serve_listener(listener).await
    }

    /// Serves on an already bound listener.
    pub async fn serve_listener(&self, listener: TcpListener) -> Result<RunningApp> {
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let app = self.clone();
        let cron_app = self.clone();
        let cron_rx = rx.clone();
        let task = tokio::spawn(async move {
            let cron = tokio::spawn(async move { cron_app.run_cron(cron_rx).await });
            app.accept_loop(listener, addr, rx).await;
            cron.abort();
        });
        Ok(RunningApp {
            addr,
            shutdown: tx,
            task,
        })
    }

    async fn accept_loop(
        &self,
        listener: TcpListener,
        addr: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) {
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        eprintln!("harness: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let app = self.clone();
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, std::convert::Infallible>(app.handle(req, peer, addr).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(self.inner.limits.header_read)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {
                eprintln!("harness: shutdown timed out waiting for connections");
            }
        }
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (resp, component) = self.dispatch(req, peer, local).await;
        println!(
            "{method} {path} {} {}ms {}",
            resp.status().as_u16(),
            start.elapsed().as_millis(),
            component.as_deref().unwrap_or("-")
        );
        resp
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> (Response<HyperOutgoingBody>, Option<String>) {
        let path = req.uri().path().to_string();
        let router = &self.inner.router;
        let Some(m) = router.route(&path) else {
            return (empty_response(StatusCode::NOT_FOUND), None);
        };
        let component = m.route.component.clone();
        if let Some(max) = self.inner.limits.max_request_bytes
            && req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n > max)
        {
            return (
                empty_response(StatusCode::PAYLOAD_TOO_LARGE),
                Some(component),
            );
        }
        if !req.headers().contains_key(http::header::HOST)
            && let Ok(v) = HeaderValue::from_str(&local.to_string())
        {
            req.headers_mut().insert(http::header::HOST, v);
        }
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone());
        let full_url = format!("http://{host}{pq}");
        for (k, v) in spin_headers(&m, router.base(), &full_url, &peer.to_string()) {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                req.headers_mut().insert(k, v);
            }
        }
        match self.invoke(&component, req).await {
            Ok(resp) => (resp, Some(component)),
            // Every instance slot is taken: say so at once rather than queue.
            Err(e)
                if e.chain()
                    .any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>()) =>
            {
                eprintln!("[{component}] saturated: {e:#}");
                let mut resp = empty_response(StatusCode::SERVICE_UNAVAILABLE);
                resp.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                (resp, Some(component))
            }
            Err(e) if e.downcast_ref::<DeadlineExceeded>().is_some() => {
                eprintln!("[{component}] stopped: {e:#}");
                (
                    empty_response(StatusCode::SERVICE_UNAVAILABLE),
                    Some(component),
                )
            }
            Err(e) => {
                eprintln!("[{component}] request failed: {e:#}");
                (
                    empty_response(StatusCode::INTERNAL_SERVER_ERROR),
                    Some(component),
                )
            }
        }
    }

    async fn invoke(
        &self,
        component: &str,
        req: Request<Incoming>,
    ) -> Result<Response<HyperOutgoingBody>> {
        let pre = self.inner.http[component].clone();
        let mut store = self.new_store(component)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let idle = self.inner.limits.body_idle;
        let deadline = self.inner.limits.request_deadline;
        let cap = self.inner.limits.max_request_bytes;
        let req = req.map(|body| IdleTimeoutBody::new(body, idle, cap));
        let request = wt(store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req))?;
        let out = wt(store.data_mut().http().new_response_outparam(sender))?;
        let id = component.to_string();
        // Set once headers went out: from then on a guest failure can only be logged here.
        let responded = Arc::new(AtomicBool::new(false));
        let responded_in_task = responded.clone();
        // The guest keeps running after sending headers (it streams the body), so it gets its
        // own task.
        let task = tokio::spawn(async move {
            let result = within_deadline(deadline, async {
                let proxy = wt(pre.instantiate_async(&mut store).await)?;
                wt(proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await)
            })
            .await;
            if let Err(e) = &result
                && responded_in_task.load(Ordering::Acquire)
            {
                eprintln!("[{id}] guest failed after sending the response head: {e:#}");
            }
            result
        });
        match receiver.await {
            Ok(Ok(resp)) => {
                responded.store(true, Ordering::Release);
                Ok(resp)
            }
            Ok(Err(code)) => anyhow::bail!("guest answered with error code {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::bail!("guest never set a response"),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            },
        }
    }
}
