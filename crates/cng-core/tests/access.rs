//! Cloudflare Access assertions through `Gateway::handle` (cargo feature `access`):
//! RS256 tokens signed here with a test key, the team's keys served by an injected
//! source; roles by email or domain, every way a token can be wrong, cross-site
//! refusal, key caching, and API keys taking precedence.

#![cfg(feature = "access")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use cng_core::access::{AccessConfig, AccessVerifier, CertSource};
use cng_core::auth;
use cng_core::backend::{Backend, InferenceRequest, Output};
use cng_core::error::{Error, ErrorKind};
use cng_core::ids::{Clock, CountingEntropy, SequentialIds};
use cng_core::store::MemoryStore;
use cng_core::usage::BoxFuture;
use cng_core::{Body, Gateway, GatewayConfig, Services};
use futures_executor::block_on;
use http::Request;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A 2048-bit RSA key made for these tests only (openssl genrsa), PKCS#1 DER, base64.
const TEST_KEY_DER_B64: &str = concat!(
    "MIIEpQIBAAKCAQEArkALhqbQgnOopI07MskiSQ8v4WybJNh15xXSbrtUwTQbewkjnrx5F/G7Rv5o",
    "XpeOhi267xRfVK7EsWkcKJfu+SEr6rc/BqsLiawkOtFkyzG3oNNoHtiVQugfhn01AQ99pmJecqmk",
    "+z1q9s0LMRft1db3RB19ApT4g9HowG1iMv5NiqWc89IpQR/ogtcI1+hGxdBh/Ym/aCwz2pP0ZcLS",
    "YEIwyRmaltRa196XDj1Mgi4Kr59TkR9K37wzb/pVQH/sQQsiYye/KpN1NicVTccBw7qzGTPLFFHy",
    "DvsZaUfRjveWpFRj3lpkfKdROCRRpSIUBu3Ja5GWyYnKwY/2pA8NxQIDAQABAoIBADCQfgXh0URC",
    "avKtwB2H7EvTdUNNKzJKOBYXQWaGRHlyheQ1KF3R5qgTQeBoAHu4nsrrzOlcUrN94CkYA/aWXc7G",
    "fYB14RWBL36H4TMZcA+nxCeJNEBAmd0jZ8HqfI7Wm+z3Bp7LhEVXmUu+2wssQaezOYgc9d312guX",
    "Qdj7w341Zr1qG31C3XxT5/ZbeaPx4BAjJi2fB/I+L/IhmRUtyJnT74WVlViPKafh3NAmulzq+01+",
    "puYIK4zHMIOOoa5T94d5EB1HxthflDMa78ebZwlmyUdl6AfNSu+1GpsaZVz1l0zooJ0Lz1COGrmE",
    "KRd2QF0nJgY15SlNryftBZeqgOMCgYEA7CLfWItb3gh3gECD/DFYLe08y02vcGJsCcMkInOADiQV",
    "Wzwy/ww59FTRlan9RpxOMnq9VHbbzHSdbiphDJX/dARsS4gOZLW9jP8PYS9L/2J6LHB+3aAw9dzV",
    "sfl9WPK31a8gKk4FpcmGYEWjL30+oNq+CwLCtdCxvZuIFvlBmJcCgYEAvOh5UQYad8YcWKuPhPCS",
    "TCDmhyPT+tBEAWoD9fu5H5uFo3HZdHw5HapvIAsVO8kU7NZ0PFOilnoM48XsLqH/1mTLahHduQC3",
    "4LxAe7hY2DItLp48DUs9ukKOxKTRiREKcTIWnBx+el57tWhj7j2fJ6MvU+29PC6d1q0BJWCsXAMC",
    "gYEAqSEhD25hUlqGHRoYbp15JwvwqzztF3WnJCbczsAjS/2UPlCTxhGfwNyvcJ7chaKWb5lx2fl3",
    "3Kz5xVodQMJ+wT4Zws+kX4W8Siy1e0pBCJ4kG4hHlb2S08ZkWKD1oqvV9/sC8soHSYNZ98Jo6y6t",
    "mNCTpZdIlqjvZXrssme9D+kCgYEAlY3GXarjUWd6EYjg+nIqoDJ7zwlCTRKMhEIWGKvMh4Vsa1U6",
    "vsmJvj6r80ZS7R3ofwfYxdnAojjF851BujlufaEWmUbDri8vY7AlrMzpKV+v/XQwPqYOnGMM/Akw",
    "Cb9/8NWiqLy2NNKQRbH7SyVl1s+OLHfOlNKjCs20Vo8OZVkCgYEAnSaJCDGydm5+ua1jx6KL0Z0I",
    "pKImaTtC4Nf2zxGtRVDqQ2z5yYCJ7eKjBbSNWrybfFE9EGZoeAZrWBJWIMKJb2Ojqg/4T6F1xyOO",
    "+dBEg92EHr9CvcxmIRS+RFFqI1OiXq0YdvmAVAlofSrH1ZREXziGcyXTcICfw3tqrFFnfHU=",
);
/// Its modulus, base64url (the JWKS `n`).
const TEST_KEY_N: &str = "rkALhqbQgnOopI07MskiSQ8v4WybJNh15xXSbrtUwTQbewkjnrx5F_G7Rv5oXpeOhi267xRfVK7EsWkcKJfu-SEr6rc_BqsLiawkOtFkyzG3oNNoHtiVQugfhn01AQ99pmJecqmk-z1q9s0LMRft1db3RB19ApT4g9HowG1iMv5NiqWc89IpQR_ogtcI1-hGxdBh_Ym_aCwz2pP0ZcLSYEIwyRmaltRa196XDj1Mgi4Kr59TkR9K37wzb_pVQH_sQQsiYye_KpN1NicVTccBw7qzGTPLFFHyDvsZaUfRjveWpFRj3lpkfKdROCRRpSIUBu3Ja5GWyYnKwY_2pA8NxQ";
const TEAM: &str = "cng-test.cloudflareaccess.com";
const AUD: &str = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";
const ADMIN: &str = "cng-access-test-admin";
const T0: u64 = 1_800_000_000;

struct TestClock(Arc<AtomicU64>);
impl Clock for TestClock {
    fn unix_seconds(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Certs {
    fetches: Arc<AtomicUsize>,
    up: bool,
}
impl CertSource for Certs {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, Error>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let up = self.up;
        Box::pin(async move {
            if !up {
                return Err(Error::new(ErrorKind::Upstream, "connection refused"));
            }
            let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                                        "n": TEST_KEY_N, "e": "AQAB"}]});
            Ok(jwks.to_string().into_bytes())
        })
    }
}

#[derive(Clone)]
struct Ok200;
impl Backend for Ok200 {
    async fn run(&self, _: InferenceRequest) -> Result<Output, Error> {
        Ok(Output::Json(json!({"response": "ok"})))
    }
}

struct T {
    g: Gateway<Ok200, MemoryStore>,
    clock: Arc<AtomicU64>,
    fetches: Arc<AtomicUsize>,
}

fn setup_with(access: bool, certs_up: bool) -> T {
    let clock = Arc::new(AtomicU64::new(T0));
    let fetches = Arc::new(AtomicUsize::new(0));
    let services = Services {
        clock: Box::new(TestClock(clock.clone())),
        ids: Box::new(SequentialIds::default()),
        entropy: Box::new(CountingEntropy::default()),
    };
    let config = GatewayConfig {
        admin_key_hash: Some(auth::hash_key(ADMIN)),
        ..GatewayConfig::default()
    };
    let mut g = Gateway::new(Ok200, MemoryStore::new(), services, config);
    if access {
        let cfg = AccessConfig {
            team_domain: TEAM.into(),
            audience: AUD.into(),
            admins: vec!["alice@example.com".into()],
            clients: vec!["@example.com".into()],
        };
        let certs = Certs {
            fetches: fetches.clone(),
            up: certs_up,
        };
        g = g.with_access(Arc::new(AccessVerifier::new(cfg, Arc::new(certs))));
    }
    T { g, clock, fetches }
}

fn token(claims: Value, kid: &str) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.into());
    let der = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(TEST_KEY_DER_B64)
            .unwrap()
    };
    let key = EncodingKey::from_rsa_der(&der);
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

fn claims(email: &str) -> Value {
    json!({"aud": [AUD], "iss": format!("https://{TEAM}"), "email": email, "sub": "u1",
           "iat": T0 - 10, "nbf": T0 - 10, "exp": T0 + 3600, "type": "app"})
}

fn get(t: &T, path: &str, jwt: Option<&str>, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut b = Request::get(path);
    if let Some(j) = jwt {
        b = b.header("cf-access-jwt-assertion", j);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let resp = block_on(t.g.handle(b.body(Body::Empty).unwrap()));
    let status = resp.status().as_u16();
    let body = match resp.into_body() {
        Body::Full(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("-")
}

#[test]
fn roles_come_from_the_verified_identity() {
    let t = setup_with(true, true);
    let alice = token(claims("alice@example.com"), "k1");
    assert_eq!(
        get(&t, "/api/keys", Some(&alice), &[]).0,
        200,
        "alice is an admin"
    );
    let bob = token(claims("bob@example.com"), "k1");
    let (s, v) = get(&t, "/api/keys", Some(&bob), &[]);
    assert_eq!((s, code(&v)), (403, "admin_required"), "bob is a client");
    assert_eq!(get(&t, "/v1/models", Some(&bob), &[]).0, 200);
    let eve = token(claims("eve@elsewhere.org"), "k1");
    let (s, v) = get(&t, "/v1/models", Some(&eve), &[]);
    assert_eq!((s, code(&v)), (403, "access_not_allowed"));
    // Keys were fetched once for all of that.
    assert_eq!(t.fetches.load(Ordering::SeqCst), 1);
    // The browser's own pages pass; another site does not.
    assert_eq!(
        get(
            &t,
            "/api/keys",
            Some(&alice),
            &[("sec-fetch-site", "same-origin")]
        )
        .0,
        200
    );
    let (s, v) = get(
        &t,
        "/api/keys",
        Some(&alice),
        &[("sec-fetch-site", "cross-site")],
    );
    assert_eq!((s, code(&v)), (403, "cross_site_request"));
}

#[test]
fn every_wrong_token_is_a_401() {
    let t = setup_with(true, true);
    let mut wrong_aud = claims("alice@example.com");
    wrong_aud["aud"] = json!(["someone-else"]);
    let mut wrong_iss = claims("alice@example.com");
    wrong_iss["iss"] = json!("https://evil.cloudflareaccess.com");
    let mut expired = claims("alice@example.com");
    expired["exp"] = json!(T0 - 61);
    let mut early = claims("alice@example.com");
    early["nbf"] = json!(T0 + 3000);
    let mut anonymous = claims("alice@example.com");
    anonymous.as_object_mut().unwrap().remove("email");
    let good = token(claims("alice@example.com"), "k1");
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        let payload = claims("mallory@example.com").to_string();
        parts[1] = base64_url(payload.as_bytes());
        parts.join(".")
    };
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("alice@example.com"),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    for (what, jwt) in [
        ("wrong audience", token(wrong_aud, "k1")),
        ("wrong issuer", token(wrong_iss, "k1")),
        ("expired", token(expired, "k1")),
        ("not valid yet", token(early, "k1")),
        ("no identity", token(anonymous, "k1")),
        ("bad signature", tampered),
        ("not signed with RS256", hs256),
        (
            "a key the team does not publish",
            token(claims("alice@example.com"), "k2"),
        ),
        ("not a JWT", "garbage".to_string()),
    ] {
        let (s, v) = get(&t, "/api/keys", Some(&jwt), &[]);
        assert_eq!((s, code(&v)), (401, "invalid_access_token"), "{what}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(what),
            "{what}: {v}"
        );
        assert!(!v.to_string().contains(&jwt), "the token is not echoed");
    }
    // An unknown key id fetches again, but at most once a minute.
    let before = t.fetches.load(Ordering::SeqCst);
    get(
        &t,
        "/api/keys",
        Some(&token(claims("alice@example.com"), "k3")),
        &[],
    );
    assert_eq!(
        t.fetches.load(Ordering::SeqCst),
        before,
        "no refetch within a minute"
    );
    t.clock.fetch_add(61, Ordering::SeqCst);
    get(
        &t,
        "/api/keys",
        Some(&token(claims("alice@example.com"), "k3")),
        &[],
    );
    assert_eq!(t.fetches.load(Ordering::SeqCst), before + 1);
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[test]
fn api_keys_win_and_access_is_off_by_default() {
    let t = setup_with(true, true);
    let (s, _) = get(
        &t,
        "/api/keys",
        Some("garbage"),
        &[("authorization", &format!("Bearer {ADMIN}"))],
    );
    assert_eq!(s, 200, "a key is checked, not the assertion");
    let off = setup_with(false, true);
    let alice = token(claims("alice@example.com"), "k1");
    let (s, v) = get(&off, "/api/keys", Some(&alice), &[]);
    assert_eq!(
        (s, code(&v)),
        (401, "missing_api_key"),
        "without configuration the header means nothing"
    );
}

#[test]
fn unreachable_certs_are_a_503_that_says_where() {
    let t = setup_with(true, false);
    let (s, v) = get(
        &t,
        "/v1/models",
        Some(&token(claims("alice@example.com"), "k1")),
        &[],
    );
    assert_eq!((s, code(&v)), (503, "access_certs_unavailable"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/cdn-cgi/access/certs")
    );
    let _ = Bytes::new();
}
