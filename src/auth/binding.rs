//! Sender-constrained tokens (extensions section 9): what a token is bound
//! to (its `cnf`, RFC 7800: `jkt` for a DPoP key, RFC 9449; `x5t#S256` for
//! a TLS client certificate, RFC 8705), and the per-request check that the
//! binding is proven and that the route's `token_binding` admits the token.
//!
//! The check runs on every request after the principal is known, whether
//! it came from a signature, an introspection answer or the identity
//! cache, so a cached identity never skips the proof or certificate.

use serde_json::Value;

use super::AuthError;
use crate::config::TokenBinding;

/// A token's confirmation keys; at least one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `cnf.jkt`: the RFC 7638 thumbprint of the DPoP key.
    pub jkt: Option<String>,
    /// `cnf["x5t#S256"]`: base64url SHA-256 of the certificate's DER.
    pub x5t: Option<String>,
}

/// The `cnf` claim (or introspection member) → the binding it states;
/// `None` without `cnf`. A `cnf` that is not an object, has neither member
/// or gives one a non-string value is refused.
pub fn from_cnf(cnf: Option<&Value>) -> Result<Option<Binding>, &'static str> {
    const BAD: &str = "token confirmation (cnf) is malformed";
    let Some(cnf) = cnf else {
        return Ok(None);
    };
    let object = cnf.as_object().ok_or(BAD)?;
    let member = |name: &str| match object.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(BAD),
    };
    let binding = Binding {
        jkt: member("jkt")?,
        x5t: member("x5t#S256")?,
    };
    if binding.jkt.is_none() && binding.x5t.is_none() {
        return Err(BAD);
    }
    Ok(Some(binding))
}

/// What this request proves about its sender.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// `[dpop]` is configured.
    pub dpop_on: bool,
    /// The credential used the DPoP scheme; then `proof_jkt` is the
    /// thumbprint of its verified proof's key.
    pub used_dpop: bool,
    pub proof_jkt: Option<&'a str>,
    /// The client certificate's thumbprint (base64url SHA-256 of its DER),
    /// from this connection's handshake or a trusted proxy's header.
    pub cert: Option<&'a str>,
}

/// Accepts the token only when every binding it carries is proven by this
/// request and the route's policy admits its kind.
pub fn check(
    binding: Option<&Binding>,
    evidence: &Evidence,
    route: TokenBinding,
) -> Result<(), AuthError> {
    let jkt = binding.and_then(|b| b.jkt.as_deref());
    let x5t = binding.and_then(|b| b.x5t.as_deref());
    let refuse = |why| Err(AuthError::InvalidToken(why));
    if jkt.is_some() && !evidence.dpop_on {
        return refuse("DPoP-bound tokens are not accepted");
    }
    match (evidence.used_dpop, jkt) {
        (true, None) => return refuse("token is not bound to a DPoP key"),
        (true, Some(jkt)) if evidence.proof_jkt != Some(jkt) => {
            return refuse("DPoP proof key does not match the token")
        }
        (false, Some(_)) => return refuse("DPoP-bound token presented as a bearer token"),
        _ => {}
    }
    if let Some(x5t) = x5t {
        match evidence.cert {
            None => return refuse("token is bound to a client certificate and none was presented"),
            Some(cert) if cert != x5t => {
                return refuse("client certificate does not match the token")
            }
            Some(_) => {}
        }
    }
    let admitted = match route {
        TokenBinding::Any => true,
        TokenBinding::Dpop => evidence.used_dpop,
        TokenBinding::Mtls => x5t.is_some(),
        TokenBinding::Bound => jkt.is_some() || x5t.is_some(),
    };
    if !admitted {
        return refuse(match route {
            TokenBinding::Dpop => "this route accepts DPoP-bound tokens only",
            TokenBinding::Mtls => "this route accepts certificate-bound tokens only",
            _ => "this route accepts sender-constrained tokens only",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cnf_table() {
        let both = Binding {
            jkt: Some("j".into()),
            x5t: Some("x".into()),
        };
        let cases = [
            (None, Ok(None)),
            (
                Some(json!({"jkt": "j"})),
                Ok(Some(Binding {
                    jkt: Some("j".into()),
                    x5t: None,
                })),
            ),
            (
                Some(json!({"x5t#S256": "x", "other": 1})),
                Ok(Some(Binding {
                    jkt: None,
                    x5t: Some("x".into()),
                })),
            ),
            (Some(json!({"jkt": "j", "x5t#S256": "x"})), Ok(Some(both))),
            (Some(json!({})), Err(())),
            (Some(json!({"jwk": {"kty": "EC"}})), Err(())),
            (Some(json!({"jkt": 1})), Err(())),
            (Some(json!({"jkt": ""})), Err(())),
            (Some(json!({"jkt": "j", "x5t#S256": null})), Err(())),
            (Some(json!("jkt")), Err(())),
            (Some(json!(null)), Err(())),
        ];
        for (cnf, want) in cases {
            let got = from_cnf(cnf.as_ref()).map_err(|_| ());
            assert_eq!(got, want, "{cnf:?}");
        }
    }

    type Case<'a> = (
        Option<&'a Binding>,
        Evidence<'a>,
        TokenBinding,
        Result<(), AuthError>,
    );

    /// Every outcome of section 9's binding and route rules.
    #[test]
    fn check_table() {
        let dpop = Binding {
            jkt: Some("J".into()),
            x5t: None,
        };
        let mtls = Binding {
            jkt: None,
            x5t: Some("X".into()),
        };
        let on = Evidence {
            dpop_on: true,
            ..Evidence::default()
        };
        let proof = |jkt| Evidence {
            used_dpop: true,
            proof_jkt: Some(jkt),
            ..on
        };
        let cert = |c| Evidence {
            cert: Some(c),
            ..on
        };
        use TokenBinding::*;
        let ok = Ok(());
        let no = |why: &'static str| Err(AuthError::InvalidToken(why));
        let cases: Vec<Case> = vec![
            // Bearer tokens.
            (None, on, Any, ok.clone()),
            (None, Evidence::default(), Any, ok.clone()),
            (
                None,
                on,
                Dpop,
                no("this route accepts DPoP-bound tokens only"),
            ),
            (
                None,
                on,
                Mtls,
                no("this route accepts certificate-bound tokens only"),
            ),
            (
                None,
                on,
                Bound,
                no("this route accepts sender-constrained tokens only"),
            ),
            (
                None,
                proof("J"),
                Any,
                no("token is not bound to a DPoP key"),
            ),
            // DPoP-bound.
            (Some(&dpop), proof("J"), Any, ok.clone()),
            (Some(&dpop), proof("J"), Dpop, ok.clone()),
            (Some(&dpop), proof("J"), Bound, ok.clone()),
            (
                Some(&dpop),
                proof("J"),
                Mtls,
                no("this route accepts certificate-bound tokens only"),
            ),
            (
                Some(&dpop),
                proof("K"),
                Any,
                no("DPoP proof key does not match the token"),
            ),
            (
                Some(&dpop),
                on,
                Any,
                no("DPoP-bound token presented as a bearer token"),
            ),
            (
                Some(&dpop),
                on,
                Dpop,
                no("DPoP-bound token presented as a bearer token"),
            ),
            (
                Some(&dpop),
                Evidence::default(),
                Any,
                no("DPoP-bound tokens are not accepted"),
            ),
            // Certificate-bound.
            (Some(&mtls), cert("X"), Any, ok.clone()),
            (Some(&mtls), cert("X"), Mtls, ok.clone()),
            (Some(&mtls), cert("X"), Bound, ok.clone()),
            (
                Some(&mtls),
                cert("X"),
                Dpop,
                no("this route accepts DPoP-bound tokens only"),
            ),
            (
                Some(&mtls),
                Evidence {
                    cert: Some("X"),
                    ..Evidence::default()
                },
                Any,
                ok.clone(),
            ),
            (
                Some(&mtls),
                cert("Y"),
                Any,
                no("client certificate does not match the token"),
            ),
            (
                Some(&mtls),
                on,
                Mtls,
                no("token is bound to a client certificate and none was presented"),
            ),
            (
                Some(&mtls),
                Evidence {
                    used_dpop: true,
                    proof_jkt: Some("X"),
                    cert: Some("X"),
                    ..on
                },
                Any,
                no("token is not bound to a DPoP key"),
            ),
        ];
        for (i, (binding, evidence, route, want)) in cases.into_iter().enumerate() {
            assert_eq!(check(binding, &evidence, route), want, "case {i}");
        }
    }
}
