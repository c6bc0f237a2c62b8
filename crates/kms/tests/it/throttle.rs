//! Password guessing over real HTTPS from several client addresses (127.0.0.2, 127.0.0.3, … all
//! reach the server on 127.0.0.1): an attacker address is slowed with 429 and `Retry-After`, and
//! neither the owner at another address nor the owner whose password is cached — even at the
//! attacker's address — is locked out.

use std::net::{IpAddr, Ipv4Addr};

use crate::api::start;

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const OWNER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const SHARED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));

/// Status and `Retry-After` of `GET /whoami` as `user`.
async fn whoami(client: &reqwest::Client, url: &str, user: (&str, &str)) -> (u16, Option<u64>) {
    let resp = client.get(url).basic_auth(user.0, Some(user.1)).send().await.unwrap();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (resp.status().as_u16(), retry_after)
}

#[tokio::test]
async fn an_attacker_address_is_slowed_and_the_owner_elsewhere_is_not_locked_out() {
    let env = start().await;
    let url = env.url("/whoami");
    let attacker = env.client_from(ATTACKER);
    // Five free failures (the test config's max_failures), then 429 with Retry-After.
    for i in 0..5 {
        assert_eq!(whoami(&attacker, &url, ("alice", &format!("guess-{i}"))).await, (401, None));
    }
    for i in 5..8 {
        let (status, retry_after) = whoami(&attacker, &url, ("alice", &format!("guess-{i}"))).await;
        assert_eq!(status, 429, "guess {i}");
        assert!(
            retry_after.is_some_and(|s| (1..=900).contains(&s)),
            "guess {i}: Retry-After {retry_after:?}"
        );
    }
    // The lock holds for the attacker's address even with the right password (nothing cached yet)…
    assert_eq!(whoami(&attacker, &url, ("alice", "a-pass")).await.0, 429);
    // …while alice, from her own address, signs in: uncached, verified, not refused.
    let owner = env.client_from(OWNER);
    assert_eq!(whoami(&owner, &url, ("alice", "a-pass")).await, (200, None));
    // A wrong password of hers from there is verified and answered 401, not 429.
    assert_eq!(whoami(&owner, &url, ("alice", "typo")).await.0, 401);
    env.kms.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_cached_password_keeps_working_at_the_attackers_own_address() {
    let env = start().await;
    let url = env.url("/whoami");
    // Bob and an attacker share an address (one NAT): Bob signs in first, so his password is cached.
    let shared = env.client_from(SHARED);
    assert_eq!(whoami(&shared, &url, ("bob", "b-pass")).await.0, 200);
    for i in 0..5 {
        assert_eq!(whoami(&shared, &url, ("bob", &format!("guess-{i}"))).await.0, 401);
    }
    assert_eq!(whoami(&shared, &url, ("bob", "guess-5")).await.0, 429, "the address is locked for bob");
    // Bob's verified password still works from that very address, again and again.
    for _ in 0..3 {
        assert_eq!(whoami(&shared, &url, ("bob", "b-pass")).await.0, 200);
    }
    env.kms.shutdown().await.unwrap();
}
