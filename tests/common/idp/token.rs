//! The identity provider's `/token` endpoint, for the gateway's own token
//! requests (`[upstreams.NAME.oauth]`): records every request whole,
//! counts them, answers as programmed ([`TokenAnswer`]), and can hold
//! every answer until released, so concurrent requests overlap.

use super::*;

/// What `/token` answers.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenAnswer {
    /// 200 with a new Bearer token `tok-N` (N counts the tokens issued, from
    /// 1) and this `expires_in` (`None`: the member is left out).
    Issue { expires_in: Option<u64> },
    /// This status with this JSON body.
    Json(u16, Value),
    /// 200 with an HTML page.
    Html,
    /// Waits [`HANG`], then issues.
    Hang,
}

/// The `/token` endpoint's programmable state.
pub(super) struct TokenEndpoint {
    answer: Mutex<TokenAnswer>,
    /// `false` holds every answer until it turns `true`.
    gate: watch::Sender<bool>,
    calls: Mutex<Vec<IntrospectCall>>,
    hits: AtomicUsize,
    issued: AtomicUsize,
}

impl TokenEndpoint {
    pub(super) fn new() -> TokenEndpoint {
        TokenEndpoint {
            answer: Mutex::new(TokenAnswer::Issue {
                expires_in: Some(3600),
            }),
            gate: watch::Sender::new(true),
            calls: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
        }
    }

    /// Records the call, waits for the gate, answers.
    pub(super) async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let call = IntrospectCall::read(req).await;
        self.calls.lock().expect("lock").push(call);
        self.hits.fetch_add(1, Ordering::SeqCst);
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        let answer = self.answer.lock().expect("lock").clone();
        let issue = |expires_in: Option<u64>| {
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let mut doc = json!({ "access_token": format!("tok-{n}"), "token_type": "Bearer" });
            if let Some(seconds) = expires_in {
                doc["expires_in"] = json!(seconds);
            }
            server::json_response(StatusCode::OK, doc.to_string())
        };
        match answer {
            TokenAnswer::Issue { expires_in } => issue(expires_in),
            TokenAnswer::Json(status, doc) => server::json_response(
                StatusCode::from_u16(status).expect("status"),
                doc.to_string(),
            ),
            TokenAnswer::Html => {
                let mut resp = server::json_response(StatusCode::OK, "<html>Sign in</html>".into());
                resp.headers_mut()
                    .insert(CONTENT_TYPE, "text/html".parse().expect("content type"));
                resp
            }
            TokenAnswer::Hang => {
                tokio::time::sleep(HANG).await;
                issue(Some(3600))
            }
        }
    }
}

impl TestIdp {
    /// `http://127.0.0.1:PORT/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// What `/token` answers from now on (by default, tokens for an hour).
    pub fn set_token_answer(&self, answer: TokenAnswer) {
        *self.state.token.answer.lock().expect("lock") = answer;
    }

    /// Holds every `/token` answer until [`TestIdp::release_tokens`].
    pub fn hold_tokens(&self) {
        self.state.token.gate.send_replace(false);
    }

    /// Lets every held `/token` answer go, and answers freely again.
    pub fn release_tokens(&self) {
        self.state.token.gate.send_replace(true);
    }

    /// Requests for `/token`, counted once their body was read.
    pub fn token_hits(&self) -> usize {
        self.state.token.hits.load(Ordering::SeqCst)
    }

    /// Every `/token` request received so far, in arrival order.
    pub fn token_calls(&self) -> Vec<IntrospectCall> {
        self.state.token.calls.lock().expect("lock").clone()
    }

    /// The most recent `/token` request; panics when there was none.
    pub fn last_token_call(&self) -> IntrospectCall {
        self.token_calls()
            .pop()
            .expect("/token received no request")
    }

    /// Waits until `/token` has been asked at least `n` times.
    pub async fn wait_token_hits(&self, n: usize) {
        eventually(
            &format!("{n} token requests (saw {})", self.token_hits()),
            || self.token_hits() >= n,
        )
        .await;
    }
}
