//! A DPoP key pair held by `node tests/e2e/dpop.mjs`: proofs (RFC 9449
//! section 4) are made by the `dpop` npm package, never by this crate, so
//! the gateway is checked against a client we did not write.

use super::*;

/// A key pair the `dpop` package generated (ES256), carried as a private JWK.
pub(crate) struct DpopKey {
    jwk: String,
    /// The key's RFC 7638 thumbprint, as the package computes it.
    pub(crate) jkt: String,
}

impl DpopKey {
    pub(crate) async fn generate() -> DpopKey {
        let out = dpop_mjs(vec!["keygen".into()]).await;
        DpopKey {
            jwk: out["jwk"].to_string(),
            jkt: out["jkt"].as_str().expect("jkt").to_string(),
        }
    }

    /// One proof per `(method, url)`, each with its own `jti`; with `ath`
    /// for `access_token` when given (resource requests), without for the
    /// token endpoint.
    pub(crate) async fn proofs(
        &self,
        access_token: Option<&str>,
        requests: &[(&str, &str)],
    ) -> Vec<String> {
        let mut args = vec![
            "proofs".to_string(),
            self.jwk.clone(),
            access_token.unwrap_or("-").to_string(),
        ];
        for (method, url) in requests {
            args.push(method.to_string());
            args.push(url.to_string());
        }
        let out = dpop_mjs(args).await;
        let proofs: Vec<String> = out["proofs"]
            .as_array()
            .expect("proofs")
            .iter()
            .map(|p| p.as_str().expect("proof").to_string())
            .collect();
        assert_eq!(proofs.len(), requests.len(), "{out}");
        proofs
    }

    /// One proof for `method url`.
    pub(crate) async fn proof(
        &self,
        access_token: Option<&str>,
        method: &str,
        url: &str,
    ) -> String {
        self.proofs(access_token, &[(method, url)]).await.remove(0)
    }
}

/// Runs `node dpop.mjs ARGS...` (bounded) and parses its one JSON line.
async fn dpop_mjs(args: Vec<String>) -> Value {
    let command = args[0].clone();
    let out = tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new("node")
                .arg("dpop.mjs")
                .args(&args)
                .current_dir(e2e_dir()),
            HELPER_LIMIT,
        )
    })
    .await
    .expect("dpop.mjs thread")
    .unwrap_or_else(|e| panic!("dpop.mjs {command}: {e}"));
    assert!(out.success, "dpop.mjs {command} failed:\n{}", out.stderr);
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("dpop.mjs {command} output ({e}): {}", out.stdout))
}
