//! Request signatures: accepted when right, refused for a wrong secret, a
//! tampered method, a skewed clock, an unknown or missing key.

mod common;

use common::TestCluster;
use tessera_meta::cluster::{ClusterCommand, User};
use tessera_meta::command::{GroupCommand, GroupResponse};
use tessera_router::auth::{client_headers, Authenticator};
use tessera_router::datapath::now_ms;
use tessera_router::error::RouterError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_verified() {
    let c = TestCluster::start().await;
    let user = User {
        user_id: "alice".into(),
        display_name: "Alice".into(),
        access_key: "AKALICE".into(),
        secret_key: "secret-of-alice".into(),
        created_at_ms: 0,
    };
    let (resp, _) = c.dp.view.meta.propose(0, &GroupCommand::Cluster(ClusterCommand::CreateUser(user))).await.unwrap();
    assert!(matches!(resp, GroupResponse::Cluster(Ok(_))));
    let auth = Authenticator::new(c.dp.view.meta.clone());
    let put = "/tessera.api.v1.Tessera/Put";
    let now = now_ms();
    let check = |h: &[(&'static str, String); 3], method: &'static str| {
        let (a, d, s) = (h[0].1.clone(), h[1].1.clone(), h[2].1.clone());
        let auth = &auth;
        async move { auth.verify(Some(&a), Some(&d), Some(&s), method, now).await }
    };
    let good = client_headers("AKALICE", "secret-of-alice", put, now);
    assert_eq!(check(&good, put).await.unwrap().user_id, "alice");

    let refused = |r: Result<User, RouterError>, why: &str| match r {
        Err(RouterError::Unauthenticated(m)) => assert!(m.contains(why), "{m}"),
        other => panic!("expected refusal ({why}), got {other:?}"),
    };
    refused(check(&client_headers("AKALICE", "not-the-secret", put, now), put).await, "does not match");
    refused(check(&good, "/tessera.api.v1.Tessera/Delete").await, "does not match");
    refused(check(&client_headers("AKALICE", "secret-of-alice", put, now - 20 * 60_000), put).await, "too far");
    refused(check(&client_headers("AKNOBODY", "whatever", put, now), put).await, "unknown access key");
    refused(auth.verify(None, Some("1"), Some("00"), put, now).await, "missing credentials");
    refused(auth.verify(Some("AKALICE"), Some(&now.to_string()), Some("zz"), put, now).await, "malformed");
}
