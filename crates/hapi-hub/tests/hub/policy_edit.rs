//! `policy.toml` edited by hand while the hub runs: the edit decides the next
//! request without a restart and is audited; an edit that does not parse
//! leaves no rule in effect (every request is asked, the old allow rules
//! included) and `GET /api/policy` says where and why until it is fixed.
use std::time::{Duration, Instant};

use hapi_protocol::{Decision, PolicyDocument, SessionCommand};
use serde_json::json;

use crate::audit::{POLICY, approvals, audit, bash, hub_with_policy, next_decide};

const NO_GIT: &str = "[[rule]]\nname = \"no git\"\ncommand = \"git *\"\naction = \"deny\"\n";
const BROKEN: &str = "[[rule]]\nname = \"no git\"\naction = \"nope\"\n";

#[tokio::test]
async fn a_hand_edit_applies_at_the_next_request_and_a_broken_one_asks() {
    let hub = hub_with_policy(POLICY).await;
    let path = hub.home().join("policy.toml");
    let created = hub.create_session().await;
    let mut wrapper = hub.wrapper(&created).await;

    // `git status` was allowed; the edit denies it.
    std::fs::write(&path, NO_GIT).unwrap();
    wrapper.send(1, bash("r1", "git status")).await;
    let (_, command) = next_decide(&mut wrapper).await;
    let SessionCommand::Decide {
        request_id,
        decision,
        message,
    } = command
    else {
        unreachable!()
    };
    assert_eq!((request_id.as_str(), decision), ("r1", Decision::RejectOnce));
    assert!(message.unwrap().contains("no git"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let reloaded = loop {
        let list = audit(&hub, "").await;
        if let Some(e) = list
            .entries
            .into_iter()
            .find(|e| e.action.as_deref() == Some("policy_reloaded"))
        {
            break e;
        }
        assert!(Instant::now() < deadline, "the reload is audited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(reloaded.actor.as_deref(), Some("policy.toml"));
    assert_eq!(reloaded.summary.as_deref(), Some("edited by hand: 1 rule in effect"));

    // A broken edit: no rule applies, not even the old one; the request waits
    // for a person.
    std::fs::write(&path, BROKEN).unwrap();
    wrapper.send(2, bash("r2", "git status")).await;
    wrapper.wait_ack(2).await;
    let pending = approvals(&hub, &created).await;
    let waiting: Vec<_> = pending.iter().filter(|a| a["state"] == "pending").collect();
    assert_eq!(waiting.len(), 1, "{pending:?}");
    assert_eq!(waiting[0]["input"]["command"], "git status");
    let doc: PolicyDocument = hub.get("/api/policy").send().await.unwrap().json().await.unwrap();
    let problem = doc.problem.expect("the problem is reported");
    assert!(problem.contains("policy.toml: line 3"), "{problem}");
    assert_eq!(doc.text, BROKEN, "the file's text, to fix");
    assert!(doc.rules.is_empty());

    // Fixed through the API: the problem is gone.
    let r = hub
        .http
        .put(format!("{}/api/policy", hub.url))
        .bearer_auth(&hub.token)
        .json(&json!({ "text": NO_GIT }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: PolicyDocument = hub.get("/api/policy").send().await.unwrap().json().await.unwrap();
    assert_eq!(doc.problem, None);
    assert_eq!(doc.rules.len(), 1);
    wrapper.close().await;
    hub.stop().await;
}
