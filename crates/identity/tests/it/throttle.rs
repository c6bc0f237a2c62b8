//! Password and secret guessing over real HTTPS from several client addresses (127.0.0.2,
//! 127.0.0.3, … all reach the server on 127.0.0.1): the attacker's address is slowed, the owner
//! at another address is not locked out, and a client secret verified before keeps working
//! even at the attacker's address.

use std::net::{IpAddr, Ipv4Addr};

use crate::browser::{Browser, authorize_query, pkce, submit_login};
use crate::{BOB_PASSWORD, Env, OTHER_SECRET, start};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const OWNER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

#[tokio::test]
async fn guessing_a_password_from_one_address_does_not_lock_the_user_out_of_the_sign_in_form() {
    let env = start().await;
    let (_, challenge) = pkce();
    let query = authorize_query(&challenge, &[]);
    let mut attacker = Browser::from_address(&env, ATTACKER);
    let page = attacker.get(&env, &query).await;
    for i in 0..5 {
        let answer =
            submit_login(&mut attacker, &env, &page, Some(("bob", &format!("guess-{i}"))), "allow").await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.body.contains("Invalid username or password."));
    }
    for i in 5..8 {
        let answer =
            submit_login(&mut attacker, &env, &page, Some(("bob", &format!("guess-{i}"))), "allow").await;
        assert_eq!(answer.status, 429, "guess {i}: {}", answer.body);
        let retry_after: u64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry_after), "Retry-After: {retry_after}");
        assert!(answer.location.is_none());
    }
    // Even the right password is refused at the attacker's address while its lock lasts…
    let answer = submit_login(&mut attacker, &env, &page, Some(("bob", BOB_PASSWORD)), "allow").await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    // …but Bob, at his own address, signs in.
    let mut owner = Browser::from_address(&env, OWNER);
    let page = owner.get(&env, &query).await;
    let answer = submit_login(&mut owner, &env, &page, Some(("bob", BOB_PASSWORD)), "allow").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.location_param("code").is_some());
    env.identity.shutdown().await.unwrap();
}

/// `client_credentials` for other-app with `secret`, from `client`.
async fn token(env: &Env, client: &reqwest::Client, secret: &str) -> (u16, serde_json::Value) {
    let resp = client
        .post(env.url("/token"))
        .basic_auth("other-app", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn guessing_a_client_secret_from_one_address_does_not_lock_the_client_out() {
    let env = start().await;
    let attacker = env.client_from(ATTACKER);
    for i in 0..8 {
        let (status, body) = token(&env, &attacker, &format!("guess-{i}")).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "guess {i}: {body}");
    }
    // The attacker's address is locked: even the right secret (not cached yet) is refused
    // there, with the same RFC 6749 error as a wrong one.
    let (status, body) = token(&env, &attacker, OTHER_SECRET).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    // The client, from its own address, authenticates…
    let owner = env.client_from(OWNER);
    let (status, body) = token(&env, &owner, OTHER_SECRET).await;
    assert_eq!(status, 200, "{body}");
    // …and its secret, now verified and cached, works even at the attacker's locked address.
    let (status, body) = token(&env, &attacker, OTHER_SECRET).await;
    assert_eq!(status, 200, "{body}");
    env.identity.shutdown().await.unwrap();
}
