//! RFC 8693 token exchange at the demo issuer: a client allowed to
//! exchange (the gateway's own client, `demo-gateway`) presents a caller's
//! access token issued here as `subject_token` and gets a new JWT for the
//! same subject, with itself as the actor (`act`, RFC 8693 section 4.1),
//! that expires no later than the subject token.

use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{json, Value};
use std::collections::HashMap;

use super::clients::Client;
use super::{granted_scope, now, oauth_error, Issuer, OAuthError, AUDIENCE, TOKEN_LIFETIME_S};

/// RFC 8693 section 2.1.
pub(super) const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 section 3.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Who a valid subject token stands for.
struct Subject {
    sub: String,
    exp: u64,
}

impl Issuer {
    /// The token-exchange grant for an authenticated `client`.
    pub(super) fn exchange(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<Value, OAuthError> {
        if !client.exchanges {
            return Err(oauth_error(
                "unauthorized_client",
                "this client may not exchange tokens",
            ));
        }
        let subject_token = form
            .get("subject_token")
            .ok_or(oauth_error("invalid_request", "subject_token is required"))?;
        if form.get("subject_token_type").map(String::as_str) != Some(ACCESS_TOKEN_TYPE) {
            return Err(oauth_error(
                "invalid_request",
                "subject_token_type must be an access token",
            ));
        }
        let subject = self.subject(subject_token).ok_or(oauth_error(
            "invalid_grant",
            "the subject token is not a valid token of this issuer",
        ))?;
        let scope = granted_scope(client, form.get("scope"))?;
        let iat = now();
        let exp = subject.exp.min(iat + TOKEN_LIFETIME_S);
        let mut claims = self.claims(&subject.sub, client, &scope, iat, exp);
        claims["act"] = json!({ "sub": client.id });
        Ok(json!({
            "access_token": self.sign(&claims)?,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": exp - iat,
            "scope": scope,
        }))
    }

    /// The subject of an unexpired access token issued here: a JWT signed
    /// with this issuer's key, or an opaque token it keeps.
    fn subject(&self, token: &str) -> Option<Subject> {
        if !token.contains('.') {
            let store = self.opaque.lock().ok()?;
            let t = store.get(token).filter(|t| t.exp > now())?;
            return Some(Subject {
                sub: t.client_id.to_string(),
                exp: t.exp,
            });
        }
        let jwk = &self.jwks()["keys"][0];
        let key = DecodingKey::from_ec_components(jwk["x"].as_str()?, jwk["y"].as_str()?).ok()?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[&self.base_url]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).ok()?;
        Some(Subject {
            sub: data.claims["sub"].as_str()?.to_string(),
            exp: data.claims["exp"].as_u64()?,
        })
    }
}
