//! The identity provider's HTTP side: the accept loop, and the answer to
//! each path (see the table in the parent module).

use super::*;

pub(super) async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if *state.failure.lock().expect("lock") == Failure::Down {
            state.total_hits.fetch_add(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { answer(&state, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Dropping the connection is how a down server "answers" on a kept-alive one.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("identity provider is down")
    }
}

impl std::error::Error for Dropped {}

async fn answer(state: &State, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    state.total_hits.fetch_add(1, Ordering::SeqCst);
    let failure = *state.failure.lock().expect("lock");
    if failure == Failure::Down {
        return Err(Dropped);
    }
    if req.uri().path() == "/introspect" {
        return Ok(introspect(&state.introspection, req).await);
    }
    if req.uri().path() == "/token" {
        return Ok(state.token.answer(req).await);
    }
    if let Some(code) = req.uri().path().strip_prefix("/token-error/") {
        let status = match code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        return Ok(json_response(status, json!({ "error": code }).to_string()));
    }
    let key_set = || json!({ "keys": state.keys.lock().expect("lock").clone() });
    let resp = match req.uri().path() {
        path if path.ends_with("/.well-known/openid-configuration") => {
            state.discovery_hits.fetch_add(1, Ordering::SeqCst);
            let doc = json!({
                "issuer": state.issuer.lock().expect("lock").clone(),
                "jwks_uri": format!("{}/jwks", state.base),
            });
            json_response(StatusCode::OK, doc.to_string())
        }
        "/jwks" => {
            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
            let delay = *state.jwks_delay.lock().expect("lock");
            tokio::time::sleep(delay).await;
            match failure {
                Failure::None | Failure::Down => {
                    let mut resp = json_response(StatusCode::OK, key_set().to_string());
                    if let Some(age) = *state.max_age.lock().expect("lock") {
                        let value = format!("public, max-age={age}")
                            .parse()
                            .expect("header value");
                        resp.headers_mut().insert(CACHE_CONTROL, value);
                    }
                    resp
                }
                Failure::Status500 => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"error":"server_error"}"#.into(),
                ),
                Failure::Hang => {
                    tokio::time::sleep(HANG).await;
                    json_response(StatusCode::OK, key_set().to_string())
                }
                Failure::Garbage => {
                    json_response(StatusCode::OK, "<html>this is not a key set {".into())
                }
                Failure::NotAKeySet => json_response(
                    StatusCode::OK,
                    json!({"keys": {}, "jwks": key_set()}).to_string(),
                ),
                Failure::Oversized => {
                    let mut doc = key_set();
                    doc["padding"] = json!("x".repeat(OVERSIZED_BYTES));
                    json_response(StatusCode::OK, doc.to_string())
                }
                Failure::Redirect => {
                    let mut resp = json_response(StatusCode::FOUND, "{}".into());
                    resp.headers_mut()
                        .insert(LOCATION, "/jwks-moved".parse().expect("location"));
                    resp
                }
            }
        }
        "/jwks-moved" => {
            state.moved_hits.fetch_add(1, Ordering::SeqCst);
            json_response(StatusCode::OK, key_set().to_string())
        }
        _ => json_response(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
    };
    Ok(resp)
}

/// `/introspect`: records the call, waits (delay, then the gate), then
/// answers from the table or with the injected failure.
async fn introspect(state: &Introspection, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let call = IntrospectCall::read(req).await;
    let _in_flight = InFlight::enter(state);
    state.calls.lock().expect("lock").push(call.clone());
    state.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().expect("lock");
    tokio::time::sleep(delay).await;
    let _ = state.gate.subscribe().wait_for(|open| *open).await;
    let failure = *state.failure.lock().expect("lock");
    let error = |status: StatusCode, code: &str| {
        json_response(status, json!({ "error": code }).to_string())
    };
    match failure {
        IntrospectFailure::None => {}
        IntrospectFailure::Hang => {
            tokio::time::sleep(HANG).await;
        }
        IntrospectFailure::Status500 => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
        IntrospectFailure::Html => {
            let mut resp = json_response(
                StatusCode::OK,
                "<html><body>Sign in to continue</body></html>".into(),
            );
            resp.headers_mut()
                .insert(CONTENT_TYPE, "text/html".parse().expect("content type"));
            return resp;
        }
        IntrospectFailure::Unauthorized => {
            return error(StatusCode::UNAUTHORIZED, "invalid_client")
        }
        IntrospectFailure::Forbidden => return error(StatusCode::FORBIDDEN, "access_denied"),
        IntrospectFailure::NotAnObject => {
            return json_response(StatusCode::OK, r#"[{"active":true}]"#.into())
        }
    }
    if call.method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    }
    let token = std::str::from_utf8(&call.body)
        .ok()
        .and_then(form_decode)
        .and_then(|form| form.into_iter().find(|(n, _)| n == "token"))
        .map(|(_, token)| token);
    let Some(token) = token else {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let answer = state
        .answers
        .lock()
        .expect("lock")
        .get(&token)
        .cloned()
        .unwrap_or_else(|| json!({ "active": false }));
    json_response(StatusCode::OK, answer.to_string())
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("content type"),
    );
    resp
}
