//! The admin port: a JSON API over HTTP (hyper) to read records and stats, and to set the
//! deny list, keep-alive and faults of the data port.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::deny::DenyEntry;
use crate::faults::Fault;
use crate::state::State;

const MAX_ADMIN_BODY: usize = 1024 * 1024;

pub async fn run(listener: TcpListener, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("ase-double: admin accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(req, &state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

fn ok(body: Value) -> Response<Full<Bytes>> {
    reply(StatusCode::OK, &body)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, &json!({ "error": message.into() }))
}

/// Reads a JSON body; `None` when the body is empty.
async fn json_body<T: DeserializeOwned>(body: Incoming) -> Result<Option<T>, Response<Full<Bytes>>> {
    let bytes = Limited::new(body, MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

async fn required<T: DeserializeOwned>(body: Incoming) -> Result<T, Response<Full<Bytes>>> {
    json_body(body).await?.ok_or_else(|| error(StatusCode::BAD_REQUEST, "a JSON body is required"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetIdle {
    ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeepAlive {
    enabled: bool,
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let result = route(&parts.method, parts.uri.path(), body, state).await;
    result.unwrap_or_else(|resp| resp)
}

async fn route(
    method: &Method,
    path: &str,
    body: Incoming,
    state: &State,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    let path = path.trim_end_matches('/');
    Ok(match (method, path) {
        (&Method::GET, "/health") => ok(json!({"status": "ok"})),
        (&Method::GET, "/stats") => ok(state.stats_json()),
        (&Method::GET, "/records") => ok(state.records_json()),
        (&Method::DELETE, "/records") => {
            state.clear_records();
            ok(json!({"cleared": true}))
        }
        (&Method::GET, "/deny") => ok(state.deny.lock().to_json()),
        (&Method::POST, "/deny") => {
            let entry: DenyEntry = required(body).await?;
            let mut deny = state.deny.lock();
            deny.add(entry.kind, &entry.value);
            ok(deny.to_json())
        }
        (&Method::DELETE, "/deny") => {
            let entry: Option<DenyEntry> = json_body(body).await?;
            let mut deny = state.deny.lock();
            match entry {
                Some(entry) => {
                    deny.remove(entry.kind, &entry.value);
                }
                None => deny.clear(),
            }
            ok(deny.to_json())
        }
        (&Method::GET, "/keepalive") => ok(json!({"enabled": state.keepalive()})),
        (&Method::PUT, "/keepalive") => {
            let k: KeepAlive = required(body).await?;
            state.set_keepalive(k.enabled);
            ok(json!({"enabled": k.enabled}))
        }
        (&Method::GET, "/forget_idle") => ok(json!({"ms": state.forget_idle_ms()})),
        (&Method::PUT, "/forget_idle") => {
            let f: ForgetIdle = required(body).await?;
            state.set_forget_idle_ms(f.ms);
            ok(json!({"ms": f.ms}))
        }
        (&Method::GET, "/fault") => ok(fault_json(&state.fault())),
        (&Method::PUT, "/fault") => {
            let fault: Fault = required(body).await?;
            fault.validate().map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            state.set_fault(fault.clone());
            ok(fault_json(&fault))
        }
        (&Method::DELETE, "/fault") => {
            state.set_fault(Fault::none());
            ok(fault_json(&Fault::none()))
        }
        (_, "/health" | "/stats" | "/records" | "/deny" | "/keepalive" | "/forget_idle" | "/fault") => {
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}"))
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such admin resource: {path}")),
    })
}

fn fault_json(fault: &Fault) -> Value {
    serde_json::to_value(fault).unwrap_or(Value::Null)
}
