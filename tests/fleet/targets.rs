//! What an entry refuses (extensions section 11), on one in-process
//! gateway: a `jti` entry that one token; a `sub` or `client_id` entry the
//! tokens of that subject or client whose `iat` is before the moment of
//! revocation, not those issued after it; an `issuer` entry only tokens of
//! that issuer.

use serde_json::json;

use crate::common::Upstream;
use crate::support::{assert_revoked, call, status, Admin, Keys};

/// An `iat` after the entry's `created_at` (a whole second, as minted).
fn issued_after(entry: &serde_json::Value) -> i64 {
    entry["created_at"].as_f64().expect("created_at").floor() as i64 + 1
}

#[tokio::test]
async fn a_jti_entry_refuses_that_token_only() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    let revoked = keys.token(json!({"jti": "jti-t1", "sub": "sub-jti"}));
    let sibling = keys.token(json!({"jti": "jti-t2", "sub": "sub-jti"}));
    let partner = keys.partner_token(json!({"jti": "jti-t1"}));
    admin.revoke(json!({"jti": "jti-t1"})).await;
    assert_revoked(&call(gw.addr(), &revoked).await, "the revoked jti");
    assert_revoked(
        &call(gw.addr(), &partner).await,
        "the same jti from another issuer (no issuer filter)",
    );
    assert_eq!(
        status(gw.addr(), &sibling).await,
        200,
        "same subject, other jti"
    );
    let reissued = keys.token(json!({"jti": "jti-t1", "iat": mint_later()}));
    assert_revoked(&call(gw.addr(), &reissued).await, "a jti entry ignores iat");
}

/// An `iat` in the near future (within the default leeway).
fn mint_later() -> i64 {
    crate::common::mint::now() + 30
}

#[tokio::test]
async fn a_sub_entry_refuses_that_subjects_tokens_issued_before_it_not_after() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    let now = crate::common::mint::now();
    let old = keys.token(json!({"sub": "sub-s1", "iat": now - 10}));
    let old_other_client =
        keys.token(json!({"sub": "sub-s1", "client_id": "app-2", "iat": now - 5}));
    let no_iat = keys.token(json!({"sub": "sub-s1", "iat": null}));
    let bystander = keys.token(json!({"sub": "sub-s2", "iat": now - 10}));
    assert_eq!(status(gw.addr(), &old).await, 200, "before the revocation");

    let entry = admin.revoke(json!({"sub": "sub-s1"})).await;
    assert_revoked(
        &call(gw.addr(), &old).await,
        "issued before, identity cached",
    );
    assert_revoked(
        &call(gw.addr(), &old_other_client).await,
        "any client of the subject",
    );
    assert_revoked(
        &call(gw.addr(), &no_iat).await,
        "no iat: issued at an unknown time",
    );
    assert_eq!(status(gw.addr(), &bystander).await, 200, "another subject");

    let fresh = keys.token(json!({"sub": "sub-s1", "iat": issued_after(&entry)}));
    assert_eq!(
        status(gw.addr(), &fresh).await,
        200,
        "issued after the revocation"
    );
    assert_revoked(&call(gw.addr(), &old).await, "the old one stays refused");
}

#[tokio::test]
async fn a_client_id_entry_refuses_that_clients_tokens_issued_before_it_not_after() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    let now = crate::common::mint::now();
    let old = keys.token(json!({"client_id": "client-c1", "sub": "u1", "iat": now - 10}));
    let old_other_user = keys.token(json!({"client_id": "client-c1", "sub": "u2", "iat": now - 1}));
    let bystander = keys.token(json!({"client_id": "client-c2", "sub": "u1", "iat": now - 10}));
    assert_eq!(status(gw.addr(), &old).await, 200, "before the revocation");

    let entry = admin.revoke(json!({"client_id": "client-c1"})).await;
    assert_revoked(
        &call(gw.addr(), &old).await,
        "issued before, identity cached",
    );
    assert_revoked(
        &call(gw.addr(), &old_other_user).await,
        "any user of the client",
    );
    assert_eq!(
        status(gw.addr(), &bystander).await,
        200,
        "another client, same user"
    );

    let fresh = keys.token(json!({"client_id": "client-c1", "iat": issued_after(&entry)}));
    assert_eq!(
        status(gw.addr(), &fresh).await,
        200,
        "issued after the revocation"
    );
}

#[tokio::test]
async fn an_issuer_filter_limits_an_entry_to_that_issuers_tokens() {
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let gw = keys.config(&upstream, "").start().await;
    let admin = Admin(gw.admin_addr());
    let now = crate::common::mint::now();
    let claims = json!({"sub": "shared-user", "client_id": "shared-app", "jti": "shared-jti", "iat": now - 10});
    let corp = keys.token(claims.clone());
    let partner = keys.partner_token(claims);

    let sub = admin
        .revoke(json!({"sub": "shared-user", "issuer": "partner"}))
        .await;
    assert_revoked(
        &call(gw.addr(), &partner).await,
        "sub entry of partner, partner token",
    );
    assert_eq!(
        status(gw.addr(), &corp).await,
        200,
        "sub entry of partner, corp token"
    );
    let gone = admin.delete(sub["id"].as_str().expect("id")).await;
    assert_eq!(gone.status, 204);

    admin
        .revoke(json!({"jti": "shared-jti", "issuer": "corp"}))
        .await;
    assert_revoked(
        &call(gw.addr(), &corp).await,
        "jti entry of corp, corp token",
    );
    assert_eq!(
        status(gw.addr(), &partner).await,
        200,
        "jti entry of corp, partner token"
    );

    admin
        .revoke(json!({"client_id": "shared-app", "issuer": "partner"}))
        .await;
    assert_revoked(
        &call(gw.addr(), &partner).await,
        "client_id entry of partner",
    );
    assert_revoked(&call(gw.addr(), &corp).await, "still the corp jti entry");
}
