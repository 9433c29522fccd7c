//! Claim validation (docs/behavior.md section 4, RFC 7519 section 4.1,
//! RFC 9068 for the `rfc9068` profile): every known claim must have the
//! right type (a string `exp` fails, it is not skipped), `exp` is required,
//! `aud` must name one of the issuer's audiences, and a `cnf` must be one
//! [`super::binding`] understands (its proof is checked per request).
//!
//! `now` is an input (seconds since the epoch) so tests pin time.

use serde_json::{Map, Value};

use super::Principal;
use crate::config::{IssuerConfig, JwtRules, Profile};

/// Claims that must be strings when present.
const STRING_CLAIMS: &[&str] = &["iss", "sub", "jti", "client_id"];

/// Claims RFC 9068 section 2.2 requires besides iss, exp, aud.
const RFC9068_REQUIRED: &[&str] = &["iat", "sub", "client_id", "jti"];

/// The `typ` header check of the issuer's profile.
pub fn check_typ(typ: Option<&str>, profile: Profile) -> Result<(), &'static str> {
    let at_jwt = typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    let ok = match profile {
        Profile::Rfc9068 => at_jwt,
        Profile::Generic => at_jwt || typ.is_none_or(|t| t.eq_ignore_ascii_case("JWT")),
    };
    if ok {
        Ok(())
    } else {
        Err("token type is not accepted")
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, &'static str> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or("token time claim is invalid"),
        Some(_) => Err("token time claim is not a number"),
    }
}

/// The strings of an `aud` claim: the string itself, or the strings of an
/// array (other members are ignored here; [`validate`] refuses them).
pub fn audience_values(aud: Option<&Value>) -> Vec<String> {
    match aud {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn audience_ok(aud: Option<&Value>, audiences: &[String]) -> Result<(), &'static str> {
    let wanted = |a: &str| audiences.iter().any(|w| w == a);
    match aud {
        None => Err("token has no audience"),
        Some(Value::String(a)) if wanted(a) => Ok(()),
        Some(Value::String(_)) => Err("token audience is not accepted"),
        Some(Value::Array(items)) => {
            if !items.iter().all(Value::is_string) {
                return Err("token audience is malformed");
            }
            if items.iter().filter_map(Value::as_str).any(wanted) {
                Ok(())
            } else {
                Err("token audience is not accepted")
            }
        }
        Some(_) => Err("token audience is malformed"),
    }
}

/// Reads scopes from the first of `scope_claims` present.
pub fn scopes(
    claims: &Map<String, Value>,
    scope_claims: &[String],
) -> Result<Vec<String>, &'static str> {
    let Some(value) = scope_claims.iter().find_map(|c| claims.get(c)) else {
        return Ok(Vec::new());
    };
    match value {
        Value::String(s) => Ok(s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or("token scope claim is malformed")
            })
            .collect(),
        _ => Err("token scope claim is malformed"),
    }
}

/// Validates the claims of a JWT from `issuer`, under its JWT `rules`;
/// the key is set by the caller.
pub fn validate(
    claims: &Map<String, Value>,
    issuer: &IssuerConfig,
    rules: &JwtRules,
    issuer_index: usize,
    forward_claims: &[String],
    now: f64,
) -> Result<Principal, &'static str> {
    for name in STRING_CLAIMS {
        if claims.get(*name).is_some_and(|v| !v.is_string()) {
            return Err("token claim has the wrong type");
        }
    }
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer.as_str()) {
        return Err("token issuer is not accepted");
    }
    audience_ok(claims.get("aud"), &issuer.audiences)?;
    let leeway = issuer.leeway.as_secs_f64();
    let exp = number(claims, "exp")?.ok_or("token has no expiry")?;
    if now >= exp + leeway {
        return Err("token expired");
    }
    if number(claims, "nbf")?.is_some_and(|nbf| now < nbf - leeway) {
        return Err("token not yet valid");
    }
    if number(claims, "iat")?.is_some_and(|iat| iat > now + leeway) {
        return Err("token issued in the future");
    }
    let binding = super::binding::from_cnf(claims.get("cnf"))?;
    if rules.profile == Profile::Rfc9068
        && RFC9068_REQUIRED.iter().any(|c| !claims.contains_key(*c))
    {
        return Err("token lacks a required claim");
    }
    if rules
        .required_claims
        .iter()
        .any(|c| claims.get(c).is_none_or(Value::is_null))
    {
        return Err("token lacks a required claim");
    }
    let scopes = scopes(claims, &issuer.scope_claims)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(String::from);
    Ok(Principal {
        issuer: issuer_index,
        key: None,
        expires_at: exp,
        scopes,
        subject: text("sub"),
        client_id: text("client_id"),
        token_id: text("jti"),
        issued_at: claims.get("iat").and_then(Value::as_f64),
        audiences: audience_values(claims.get("aud")),
        binding,
        forwarded: Principal::forwarded_claims(forward_claims, claims),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;
    use std::path::Path;

    fn issuer(profile: &str, extra: &str) -> IssuerConfig {
        let text = format!(
            "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n[issuers.i]\nissuer = \"https://idp.example.com/\"\njwks_uri = \"https://idp.example.com/jwks\"\naudiences = [\"api\", \"api2\"]\nprofile = \"{profile}\"\n{extra}"
        );
        Config::from_toml(&text, Path::new("."), Vec::new())
            .unwrap()
            .issuers
            .remove(0)
    }

    /// [`super::validate`] under `issuer`'s own JWT rules.
    fn validate(
        claims: &Map<String, Value>,
        issuer: &IssuerConfig,
        index: usize,
        forward: &[String],
        now: f64,
    ) -> Result<Principal, &'static str> {
        let rules = issuer.jwt.as_ref().expect("a key source");
        super::validate(claims, issuer, rules, index, forward, now)
    }

    const NOW: f64 = 1_700_000_000.0;

    fn base() -> Value {
        json!({"iss": "https://idp.example.com/", "aud": "api", "exp": NOW + 600.0, "sub": "alice",
               "client_id": "app", "iat": NOW, "jti": "j", "scope": "a b"})
    }

    fn with(changes: Value) -> Map<String, Value> {
        let mut c = base();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    #[test]
    fn validate_claims_table() {
        let generic = issuer("generic", "");
        let ok = Ok::<(), &str>(());
        let cases: Vec<(Value, Result<(), &str>)> = vec![
            (json!({}), ok),
            (
                json!({"iss": "https://idp.example.com"}),
                Err("token issuer is not accepted"),
            ),
            (
                json!({"iss": "https://IDP.example.com/"}),
                Err("token issuer is not accepted"),
            ),
            (
                json!({"iss": "https://idp.example.com/x"}),
                Err("token issuer is not accepted"),
            ),
            (json!({"iss": null}), Err("token issuer is not accepted")),
            (
                json!({"iss": ["https://idp.example.com/"]}),
                Err("token claim has the wrong type"),
            ),
            (json!({"aud": ["x", "api2"]}), ok),
            (json!({"aud": ["x"]}), Err("token audience is not accepted")),
            (json!({"aud": "API"}), Err("token audience is not accepted")),
            (json!({"aud": null}), Err("token has no audience")),
            (
                json!({"aud": ["api", 1]}),
                Err("token audience is malformed"),
            ),
            (json!({"aud": 1}), Err("token audience is malformed")),
            (json!({"exp": null}), Err("token has no expiry")),
            (
                json!({"exp": "9999999999"}),
                Err("token time claim is not a number"),
            ),
            (json!({"exp": NOW - 60.0}), Err("token expired")),
            (json!({"exp": NOW - 59.0}), ok),
            (json!({"exp": NOW - 60.5}), Err("token expired")),
            (json!({"nbf": NOW + 60.0}), ok),
            (json!({"nbf": NOW + 61.0}), Err("token not yet valid")),
            (json!({"nbf": "0"}), Err("token time claim is not a number")),
            (json!({"iat": NOW + 60.0}), ok),
            (
                json!({"iat": NOW + 61.0}),
                Err("token issued in the future"),
            ),
            (
                json!({"iat": true}),
                Err("token time claim is not a number"),
            ),
            // A cnf is read here and proven per request (auth::binding).
            (json!({"cnf": {"jkt": "x"}}), ok),
            (json!({"cnf": {"x5t#S256": "x"}}), ok),
            (
                json!({"cnf": {"jwk": {}}}),
                Err("token confirmation (cnf) is malformed"),
            ),
            (
                json!({"cnf": {"jkt": 5}}),
                Err("token confirmation (cnf) is malformed"),
            ),
            (json!({"sub": 5}), Err("token claim has the wrong type")),
            (
                json!({"client_id": ["a"]}),
                Err("token claim has the wrong type"),
            ),
            (json!({"scope": 5}), Err("token scope claim is malformed")),
            (
                json!({"scope": null, "scp": ["a", 1]}),
                Err("token scope claim is malformed"),
            ),
            (
                json!({"sub": null, "jti": null, "client_id": null, "iat": null}),
                ok,
            ),
        ];
        for (change, want) in cases {
            let got = validate(&with(change.clone()), &generic, 0, &[], NOW).map(|_| ());
            assert_eq!(got, want, "{change}");
        }
    }

    #[test]
    fn validate_rfc9068_requires_its_claims() {
        let strict = issuer("rfc9068", "");
        assert!(validate(&with(json!({})), &strict, 0, &[], NOW).is_ok());
        for missing in ["iat", "sub", "client_id", "jti"] {
            let got = validate(&with(json!({ missing: null })), &strict, 0, &[], NOW);
            assert_eq!(got.err(), Some("token lacks a required claim"), "{missing}");
        }
    }

    #[test]
    fn validate_required_claims_and_forwarded_claims() {
        let i = issuer("generic", "required_claims = [\"tenant\"]");
        assert_eq!(
            validate(&with(json!({})), &i, 0, &[], NOW).err(),
            Some("token lacks a required claim")
        );
        let p = validate(
            &with(json!({"tenant": "t1"})),
            &i,
            3,
            &["sub".into(), "tenant".into(), "absent".into()],
            NOW,
        )
        .unwrap();
        assert_eq!(p.issuer, 3);
        assert_eq!(p.subject.as_deref(), Some("alice"));
        assert_eq!(p.client_id.as_deref(), Some("app"));
        assert_eq!(p.scopes, vec!["a", "b"]);
        assert_eq!(p.expires_at, NOW + 600.0);
        let forwarded: Vec<(&str, &str)> = p
            .forwarded
            .iter()
            .map(|(claim, value)| (claim.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(forwarded, [("sub", "alice"), ("tenant", "t1")]);
    }

    #[test]
    fn scopes_first_claim_present_wins() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let sc = ["scope".to_string(), "scp".to_string()];
        assert_eq!(
            scopes(&claims(json!({"scp": ["x", "y"]})), &sc).unwrap(),
            vec!["x", "y"]
        );
        assert_eq!(
            scopes(&claims(json!({"scope": "a  b", "scp": ["x"]})), &sc).unwrap(),
            vec!["a", "b"]
        );
        assert!(scopes(&claims(json!({})), &sc).unwrap().is_empty());
    }

    #[test]
    fn check_typ_per_profile() {
        let cases = [
            (None, Profile::Generic, true),
            (Some("JWT"), Profile::Generic, true),
            (Some("jwt"), Profile::Generic, true),
            (Some("at+jwt"), Profile::Generic, true),
            (Some("application/at+JWT"), Profile::Generic, true),
            (Some("secevent+jwt"), Profile::Generic, false),
            (Some("dpop+jwt"), Profile::Generic, false),
            (None, Profile::Rfc9068, false),
            (Some("JWT"), Profile::Rfc9068, false),
            (Some("at+jwt"), Profile::Rfc9068, true),
            (Some("application/at+jwt"), Profile::Rfc9068, true),
        ];
        for (typ, profile, ok) in cases {
            assert_eq!(check_typ(typ, profile).is_ok(), ok, "{typ:?} {profile:?}");
        }
    }
}
