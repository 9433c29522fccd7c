//! A table of tampered tokens that must each be refused with
//! `invalid_token`, the description echoing nothing of the token.

use super::*;

/// Tokens that must each be refused with `invalid_token` (section 3).
#[tokio::test]
async fn tampered_tokens_are_401_invalid_token() {
    let s = Setup::start("", "").await;
    // One initial fetch per issuer (corp and strict share the key set).
    let initial_fetches = s.idp.jwks_hits();
    let k = &s.k;
    let attacker_key = Key::rs256("attacker").jwk_alg(None);
    let attacker = TestIdp::with_keys(&[&attacker_key]).await;
    let iss = s.idp.issuer();
    let c = s.claims();
    let valid = k.rs.token(&c);
    let valid_segments: Vec<String> = valid.split('.').map(String::from).collect();
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut case = |what: &str, token: String| cases.push((what.to_string(), token));

    // alg none in every spelling, with an empty and a non-empty signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned =
            k.rs.jwt(&c)
                .header("alg", json!(alg))
                .header("kid", Value::Null);
        case(
            &format!("alg {alg}, empty signature"),
            unsigned.clone().signature_segment("").encode(),
        );
        case(
            &format!("alg {alg}, non-empty signature"),
            unsigned.signature_segment("c2ln").encode(),
        );
        let keyed = k.rs.jwt(&c).header("alg", json!(alg));
        case(
            &format!("alg {alg} with kid and an RS256 signature"),
            keyed.encode(),
        );
    }
    case("no alg", k.rs.jwt(&c).header("alg", Value::Null).encode());
    case(
        "alg not a string",
        k.rs.jwt(&c).header("alg", json!(["RS256"])).encode(),
    );
    case(
        "alg in the wrong case",
        k.rs.jwt(&c).header("alg", json!("rs256")).encode(),
    );
    case(
        "alg outside the allow-list",
        k.rs.jwt(&c).header("alg", json!("RS384")).encode(),
    );

    // HS* with the RSA public key (in every form) as the HMAC secret.
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": "rs-1"});
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PEM", k.rs.spki_pem().into_bytes()),
        ("SPKI DER", k.rs.spki_der()),
        ("PKCS#1 DER", k.rs.rsa_pkcs1_der()),
        ("modulus", k.rs.rsa_modulus()),
        ("base64url modulus", b64(k.rs.rsa_modulus()).into_bytes()),
        ("JWK JSON", k.rs.jwk().to_string().into_bytes()),
    ];
    for (form, secret) in &secrets {
        case(
            &format!("HS256 keyed with the {form}"),
            hmac_token("HS256", secret, &hs_header, &c),
        );
    }
    let hs512 = json!({"alg": "HS512", "typ": "JWT"});
    case(
        "HS512 without kid",
        hmac_token("HS512", &k.rs.spki_der(), &hs512, &c),
    );

    // Key and algorithm must fit.
    case("RS256 naming an EC key", k.rs.with_kid("ec-1").token(&c));
    case("ES256 naming an RSA key", k.ec.with_kid("rs-1").token(&c));
    case("EdDSA naming an EC key", k.ed.with_kid("ec-1").token(&c));
    case(
        "RS256 with a key whose JWK alg is PS256",
        k.ps.signing_as(Alg::RS256).token(&c),
    );
    case(
        "PS256 with a key whose JWK alg is RS256",
        k.rs.signing_as(Alg::PS256).token(&c),
    );
    case("unknown kid", k.rs.with_kid("unknown-kid-1").token(&c));
    case(
        "kid of 257 bytes",
        k.rs.with_kid(&"k".repeat(257)).token(&c),
    );
    case(
        "kid not a string",
        k.rs.jwt(&c).header("kid", json!(1)).encode(),
    );
    case(
        "ES256 without kid, two EC keys",
        k.ec.without_kid().token(&c),
    );

    // Key locations in the header: never followed, always refused.
    let evil = attacker_key.jwt(&c);
    case(
        "jku to the attacker",
        evil.header("jku", json!(attacker.jwks_uri())).encode(),
    );
    let evil = attacker_key.jwt(&c);
    case(
        "x5u to the attacker",
        evil.header("x5u", json!(format!("{}/cert.pem", attacker.base_url())))
            .encode(),
    );
    let evil = attacker_key.jwt(&c);
    case(
        "embedded jwk",
        evil.header("jwk", attacker_key.jwk()).encode(),
    );
    let evil = attacker_key.jwt(&c);
    case(
        "x5c with the attacker's key",
        evil.header("x5c", json!([b64(attacker_key.spki_der())]))
            .encode(),
    );
    case(
        "jku next to a valid kid and signature",
        k.rs.jwt(&c)
            .header("jku", json!(attacker.jwks_uri()))
            .encode(),
    );
    case(
        "x5u next to a valid kid and signature",
        k.rs.jwt(&c)
            .header("x5u", json!(attacker.base_url()))
            .encode(),
    );
    case(
        "jwk next to a valid kid and signature",
        k.rs.jwt(&c).header("jwk", k.rs.jwk()).encode(),
    );

    // crit, cty, typ.
    case(
        "crit [exp]",
        k.rs.jwt(&c).header("crit", json!(["exp"])).encode(),
    );
    case("crit []", k.rs.jwt(&c).header("crit", json!([])).encode());
    case("cty JWT", k.rs.jwt(&c).header("cty", json!("JWT")).encode());
    case("cty jwt", k.rs.jwt(&c).header("cty", json!("jwt")).encode());
    for typ in ["dpop+jwt", "secevent+jwt", "JOSE", "at+jwt+x", ""] {
        case(
            &format!("typ {typ:?}"),
            k.rs.jwt(&c).header("typ", json!(typ)).encode(),
        );
    }
    case(
        "typ not a string",
        k.rs.jwt(&c).header("typ", json!(1)).encode(),
    );

    // Structure.
    let (h, p, sig) = (&valid_segments[0], &valid_segments[1], &valid_segments[2]);
    case(
        "JWE-shaped, five segments",
        segments(&[h, "ZW5j", "aXY", p, sig]),
    );
    case("four segments", segments(&[h, p, sig, sig]));
    case("two segments", segments(&[h, p]));
    case("one trailing dot", format!("{valid}."));
    case("padding on the signature", format!("{valid}="));
    case("double padding on the signature", format!("{valid}=="));
    case("empty signature", segments(&[h, p, ""]));
    case("empty header", segments(&["", p, sig]));
    case("empty claims", segments(&[h, "", sig]));
    case(
        "standard base64 signature",
        segments(&[h, p, &sig.replace(['-', '_'], "+")]),
    );
    case(
        "slash in the signature",
        segments(&[h, p, &format!("{}/", &sig[1..])]),
    );
    case("tilde in the claims", segments(&[h, &format!("{p}~"), sig]));
    case(
        "header not JSON",
        k.rs.jwt(&c).raw_header("alg=RS256").encode(),
    );
    case(
        "header a JSON array",
        k.rs.jwt(&c).raw_header(r#"["RS256"]"#).encode(),
    );
    case(
        "claims not JSON",
        k.rs.jwt(&c).raw_claims("sub=alice").encode(),
    );
    case(
        "claims a JSON array",
        k.rs.jwt(&c).raw_claims(&json!([c]).to_string()).encode(),
    );
    case(
        "claims with trailing data",
        k.rs.jwt(&c).raw_claims(&format!("{c} {{}}")).encode(),
    );
    case(
        "opaque token, no issuer can introspect",
        "opaque-token-1234".into(),
    );

    // Duplicate member names.
    let dup_header = r#"{"alg":"RS256","kid":"rs-1","typ":"at+jwt","kid":"rs-1"}"#;
    case(
        "duplicate kid in the header",
        k.rs.jwt(&c).raw_header(dup_header).encode(),
    );
    let dup_alg = r#"{"alg":"none","kid":"rs-1","alg":"RS256"}"#;
    case(
        "duplicate alg in the header",
        k.rs.jwt(&c).raw_header(dup_alg).encode(),
    );
    let body = c.to_string();
    let dup_sub = body.replacen('{', r#"{"sub":"mallory","#, 1);
    case(
        "duplicate sub in the claims",
        k.rs.jwt(&c).raw_claims(&dup_sub).encode(),
    );
    let dup_aud = body.replacen('{', r#"{"aud":"https://evil.test","#, 1);
    case(
        "duplicate aud in the claims",
        k.rs.jwt(&c).raw_claims(&dup_aud).encode(),
    );
    let nested = with(&c, json!({"ext": {"role": "user"}})).to_string();
    let dup_nested = nested.replacen(r#"{"role":"user"}"#, r#"{"role":"user","role":"admin"}"#, 1);
    assert_ne!(nested, dup_nested);
    case(
        "duplicate nested member in the claims",
        k.rs.jwt(&c).raw_claims(&dup_nested).encode(),
    );

    // Claim types and values.
    let t = now();
    for (what, change) in [
        ("exp a string", json!({"exp": (t + 600).to_string()})),
        ("exp missing", json!({"exp": null})),
        ("exp in the past beyond leeway", json!({"exp": t - 30})),
        ("exp long ago", json!({"exp": t - 86_400})),
        ("nbf a string", json!({"nbf": t.to_string()})),
        ("nbf in the future beyond leeway", json!({"nbf": t + 60})),
        ("iat in the future beyond leeway", json!({"iat": t + 60})),
        ("iat a string", json!({"iat": t.to_string()})),
        ("aud a number", json!({"aud": 1})),
        ("aud an array with a number", json!({"aud": [AUD, 1]})),
        ("aud an object", json!({"aud": {"a": AUD}})),
        ("aud missing", json!({"aud": null})),
        ("aud another audience", json!({"aud": "https://evil.test"})),
        ("aud in another case", json!({"aud": "https://API.test"})),
        ("aud empty array", json!({"aud": []})),
        (
            "aud array without ours",
            json!({"aud": ["https://evil.test"]}),
        ),
        ("iss missing", json!({"iss": null})),
        ("iss a number", json!({"iss": 1})),
        ("iss an array", json!({"iss": [iss.clone()]})),
        (
            "iss without the trailing slash",
            json!({"iss": iss.trim_end_matches('/')}),
        ),
        ("iss with a second slash", json!({"iss": format!("{iss}/")})),
        ("iss in upper case", json!({"iss": iss.to_uppercase()})),
        ("iss with a prefix", json!({"iss": format!("x{iss}")})),
        ("iss with a suffix", json!({"iss": format!("{iss}x")})),
        ("iss with a path", json!({"iss": format!("{iss}tenant")})),
        (
            "iss of https",
            json!({"iss": iss.replace("http://", "https://")}),
        ),
        ("iss with a space", json!({"iss": format!("{iss} ")})),
        ("sub a number", json!({"sub": 7})),
        ("client_id an array", json!({"client_id": ["app-1"]})),
        ("scope a number", json!({"scope": 1})),
        (
            "cnf present",
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
        ("cnf present but empty", json!({"cnf": {}})),
    ] {
        case(what, k.rs.token(&with(&c, change)));
    }

    // Signatures.
    case(
        "ECDSA signature in DER form",
        k.ec.jwt(&c).der_signature().encode(),
    );
    case(
        "ECDSA R||S all zero",
        k.ec.jwt(&c).signature_bytes(vec![0; 64]).encode(),
    );
    let order = hex_bytes("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let mut r_is_n = order.clone();
    r_is_n.extend_from_slice(&[0; 31]);
    r_is_n.push(1);
    case(
        "ECDSA R equal to the group order",
        k.ec.jwt(&c).signature_bytes(r_is_n).encode(),
    );
    let ec_input = k.ec.jwt(&c).signing_input();
    let ec_sig = k.ec.sign(ec_input.as_bytes());
    case(
        "ECDSA signature one byte short",
        format!("{ec_input}.{}", b64(&ec_sig[..63])),
    );
    case(
        "ECDSA signature one byte long",
        format!("{ec_input}.{}", b64([&ec_sig[..], &[0]].concat())),
    );
    case(
        "RSA signature all zero",
        k.rs.jwt(&c).signature_bytes(vec![0; 256]).encode(),
    );
    case(
        "RSA signature truncated",
        k.rs.jwt(&c)
            .signature_bytes(k.rs.sign(b"x")[..255].to_vec())
            .encode(),
    );
    case(
        "Ed25519 signature all zero",
        k.ed.jwt(&c).signature_bytes(vec![0; 64]).encode(),
    );
    case(
        "signature over other bytes",
        k.rs.jwt(&c).signature_bytes(k.rs.sign(b"other")).encode(),
    );
    case(
        "RSA signature by another key with the same kid",
        k.rs.jwt(&c)
            .signed_by(&Key::rsa(2, Alg::RS256, "rs-1"))
            .encode(),
    );
    case(
        "ECDSA signature by another key with the same kid",
        k.ec.jwt(&c).signed_by(&Key::es256("ec-1")).encode(),
    );
    case(
        "Ed25519 signature by another key with the same kid",
        k.ed.jwt(&c).signed_by(&Key::eddsa("ed-1")).encode(),
    );
    case(
        "PS256 signature where RS256 is claimed",
        k.rs.jwt(&c)
            .signed_by(&k.rs.signing_as(Alg::PS256))
            .encode(),
    );
    let raised = b64(with(&c, json!({"scope": "admin ops"})).to_string());
    case(
        "tampered claims, original signature",
        replace_segment(&valid, 1, &raised),
    );
    let retyped = b64(k.rs.header().to_string().replace("at+jwt", "JWT"));
    case(
        "tampered header, original signature",
        replace_segment(&valid, 0, &retyped),
    );
    let other = k.rs.token(&with(&c, json!({"jti": "another-token"})));
    case(
        "signature of another token",
        replace_segment(&valid, 2, other.split('.').nth(2).expect("signature")),
    );

    for (what, token) in &cases {
        let reply = s.call("/api/x", token).await;
        assert_invalid_token_hides(&reply, REALM, token, what);
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "no refused token reached the upstream"
    );
    assert_eq!(
        attacker.total_hits(),
        0,
        "the gateway never contacted a server a token named"
    );
    let fetches = s.idp.jwks_hits() - initial_fetches;
    assert!(
        fetches <= 1,
        "unknown kids cost at most one refetch per cooldown: {fetches}"
    );

    // The same keys still work: the refusals were about the tokens.
    for key in [&k.rs, &k.ps, &k.ec, &k.ed] {
        assert_eq!(
            s.call("/api/x", &key.token(&c)).await.status,
            200,
            "{:?}",
            key.alg()
        );
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}
