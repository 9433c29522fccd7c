//! The revocation endpoints of the admin listener (extensions section 11):
//! `POST /revocations` (one of `jti`, `sub`, `client_id`; optional
//! `issuer` and `ttl_s`) → 201 with the entry; `GET /revocations` → the
//! live entries; `DELETE /revocations/{id}` → 204, or 404 when unknown.
//! Every call needs `Authorization: Bearer <admin.api_token>`, compared in
//! constant time (401 without it or with another); without an `api_token`
//! configured the endpoints do not exist (404).

use aws_lc_rs::digest::{digest, SHA256};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};
use std::sync::Arc;

use super::{sync, DenyList, Entry, Pending, Target};
use crate::config::Secret;
use crate::fleet::client::Redis;

/// The path prefix of the endpoints.
pub const PATH: &str = "/revocations";
/// The largest request body read.
const MAX_BODY: usize = 8 * 1024;
/// `ttl_s` when absent, and its bound.
const DEFAULT_TTL_S: u64 = 86_400;
const MAX_TTL_S: u64 = 31_536_000;
/// The longest value of `jti`, `sub` or `client_id`.
const MAX_VALUE_BYTES: usize = 1024;

/// What the endpoints work with.
pub struct Api<'a> {
    pub token: Option<&'a Secret>,
    pub deny: &'a Arc<DenyList>,
    pub redis: Option<&'a Redis>,
    /// The configured issuers' names.
    pub issuers: Vec<&'a str>,
    pub now: f64,
}

/// Whether `path` belongs to these endpoints.
pub fn owns(path: &str) -> bool {
    path == PATH || path.strip_prefix(PATH).is_some_and(|r| r.starts_with('/'))
}

/// Answers one request to [`PATH`] or below.
pub async fn handle(api: Api<'_>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(token) = api.token else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    };
    if !authorized(req.headers().get(AUTHORIZATION), token) {
        let mut resp = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API token is missing or wrong",
        );
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tokengate-admin\""),
        );
        return resp;
    }
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.strip_prefix(PATH).unwrap_or("")) {
        (Method::POST, "") => create(&api, req.into_body()).await,
        (Method::GET | Method::HEAD, "") => list(&api),
        (Method::DELETE, rest) if rest.len() > 1 => remove(&api, &rest[1..]).await,
        (_, "") => not_allowed("GET, HEAD, POST"),
        (_, rest) if rest.len() > 1 => not_allowed("DELETE"),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

/// Compares SHA-256 digests in constant time, so neither the length nor
/// the content of the configured token leaks through timing.
fn authorized(header: Option<&HeaderValue>, token: &Secret) -> bool {
    let presented = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .unwrap_or("");
    let a = digest(&SHA256, presented.as_bytes());
    let b = digest(&SHA256, token.expose().as_bytes());
    #[allow(deprecated)]
    let equal = aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok();
    equal && !presented.is_empty()
}

async fn create(api: &Api<'_>, body: Incoming) -> Response<Full<Bytes>> {
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return bad_request("the body must be a JSON object of at most 8 KiB");
        }
    };
    let entry = match parse(&bytes, &api.issuers, api.now) {
        Ok(entry) => entry,
        Err(why) => return bad_request(why),
    };
    api.deny.insert(entry.clone());
    let stored = match api.redis {
        Some(redis) => sync::add(redis, &entry).await,
        None => true,
    };
    if !stored {
        api.deny.defer(Pending::Add(entry.clone()));
    }
    let mut doc = entry_json(&entry);
    doc["propagated"] = json!(stored);
    respond(StatusCode::CREATED, doc)
}

fn list(api: &Api<'_>) -> Response<Full<Bytes>> {
    let entries: Vec<Value> = api
        .deny
        .list(api.now)
        .iter()
        .map(|e| entry_json(e))
        .collect();
    respond(StatusCode::OK, json!({ "revocations": entries }))
}

async fn remove(api: &Api<'_>, id: &str) -> Response<Full<Bytes>> {
    let known = api.deny.get(id).is_some_and(|e| e.expires_at > api.now);
    if !known || !api.deny.remove(id) {
        return error(StatusCode::NOT_FOUND, "not_found", "no such revocation");
    }
    let stored = match api.redis {
        Some(redis) => sync::delete(redis, id).await,
        None => true,
    };
    if !stored {
        api.deny.defer(Pending::Delete(id.to_string()));
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// The request body → an entry; the error is the client-facing reason.
pub fn parse(body: &[u8], issuers: &[&str], now: f64) -> Result<Entry, &'static str> {
    let doc: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => m,
        _ => return Err("the body must be a JSON object"),
    };
    const KNOWN: &[&str] = &["jti", "sub", "client_id", "issuer", "ttl_s"];
    if doc.keys().any(|k| !KNOWN.contains(&k.as_str())) {
        return Err("unknown member; allowed: jti, sub, client_id, issuer, ttl_s");
    }
    let text = |name: &str| -> Result<Option<String>, &'static str> {
        match doc.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_VALUE_BYTES => {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(
                "jti, sub, client_id and issuer must be non-empty strings of at most 1024 bytes",
            ),
        }
    };
    let targets = [
        text("jti")?.map(Target::Jti),
        text("sub")?.map(Target::Sub),
        text("client_id")?.map(Target::ClientId),
    ];
    let mut named = targets.into_iter().flatten();
    let (Some(target), None) = (named.next(), named.next()) else {
        return Err("name exactly one of jti, sub or client_id");
    };
    let issuer = text("issuer")?;
    if issuer.as_deref().is_some_and(|i| !issuers.contains(&i)) {
        return Err("issuer must be the name of a configured issuer");
    }
    let ttl_s = match doc.get("ttl_s") {
        None => DEFAULT_TTL_S,
        Some(v) => v
            .as_u64()
            .filter(|t| (1..=MAX_TTL_S).contains(t))
            .ok_or("ttl_s must be an integer from 1 to 31536000")?,
    };
    Ok(Entry {
        id: new_id(),
        target,
        issuer,
        created_at: now,
        expires_at: now + ttl_s as f64,
    })
}

/// 128 random bits as hex.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn entry_json(e: &Entry) -> Value {
    let mut doc = serde_json::to_value(e).unwrap_or(Value::Null);
    doc["ttl_s"] = json!((e.expires_at - e.created_at).round() as u64);
    doc
}

fn bad_request(why: &'static str) -> Response<Full<Bytes>> {
    error(StatusCode::BAD_REQUEST, "invalid_request", why)
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed here",
    );
    resp.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn error(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        json!({"error": code, "error_description": description}),
    )
}

/// A JSON answer of the admin listener (`no-store`); also used by
/// [`crate::admin`] for `/readyz`.
pub fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
