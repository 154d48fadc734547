//! A full disk under a running hub: writes fail with `507 disk_full`, nothing
//! stored before is lost, a wrapper's unacknowledged updates are resent and
//! stored once, and the hub goes on as soon as there is space again.
use hapi_protocol::{HubFrame, SessionUpdate};
use hapi_testkit::SmallDisk;
use serde_json::{Value, json};

use crate::support::TestHub;

async fn prompt(hub: &TestHub, sid: &str, text: &str) -> reqwest::Response {
    hub.post(&format!("/api/sessions/{sid}/messages"))
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap()
}

/// A text big enough that each write needs fresh pages, marked so it can be found.
fn big(mark: &str) -> String {
    format!("{mark}:{}", "x".repeat(64 * 1024))
}

fn mark_of(message: &Value) -> Option<String> {
    let text = message["update"]["text"].as_str()?;
    Some(text.split(':').next().unwrap().to_owned())
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_and_loses_nothing() {
    let outer = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&outer.path().join("disk"), "8m")
        .unwrap_or_else(|e| panic!("this test fills a small tmpfs, as on CI: {e}"));
    let home = tempfile::tempdir_in(disk.path()).unwrap();
    let hub = TestHub::start_in(home).await;
    let created = hub.create_session().await;
    let sid = created.session.id.clone();

    // Stored before the disk fills: three updates and a prompt.
    let mut wrapper = hub.wrapper(&created).await;
    for seq in 1..=3 {
        let text = format!("before-{seq}");
        wrapper.send(seq, SessionUpdate::AgentMessageChunk { text }).await;
    }
    wrapper.wait_ack(3).await;
    assert_eq!(prompt(&hub, &sid, "prompt-before").await.status(), 202);
    let mut stored = vec!["before-1", "before-2", "before-3", "prompt-before"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();

    let filler = disk.fill();

    // Prompts go on until what the database files already had room for is used.
    let mut refusal = None;
    for n in 0..100 {
        let mark = format!("prompt-full-{n}");
        let r = prompt(&hub, &sid, &big(&mark)).await;
        match r.status().as_u16() {
            202 => stored.push(mark),
            507 => {
                refusal = Some((mark, r.json::<Value>().await.unwrap()));
                break;
            }
            other => panic!("a prompt on a full disk got {other}: {}", r.text().await.unwrap()),
        }
    }
    let (refused, body) = refusal.expect("no prompt was refused on a full disk");
    assert_eq!(body["error"]["code"], "disk_full", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for part in ["disk", "full", "nothing of this request was stored", "Free some space"] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }

    // The wrapper's updates are not acknowledged; the hub drops the link so the
    // wrapper resends them later.
    let mut sent = Vec::new();
    let mut acked = 3;
    'sending: for seq in 4..=40u64 {
        let mark = format!("update-{seq}");
        wrapper
            .send(seq, SessionUpdate::AgentMessageChunk { text: big(&mark) })
            .await;
        sent.push((seq, mark));
        loop {
            match wrapper.next().await {
                Some(HubFrame::Ack { client_seq }) => {
                    acked = client_seq;
                    if client_seq == seq {
                        break;
                    }
                }
                Some(_) => {} // the prompts' commands
                None => break 'sending,
            }
        }
    }
    let last_sent = sent.last().unwrap().0;
    eprintln!(
        "disk full: {} prompts stored before {refused} was refused; updates acknowledged up to {acked} of {last_sent}",
        stored.len() - 4
    );
    assert!(acked < last_sent, "the hub acknowledged everything on a full disk");

    // The hub still answers reads, with everything stored before.
    let marks = history(&hub, &sid).await;
    assert!(!marks.contains(&refused), "the refused prompt is not stored");

    // Space again: the same wrapper reconnects and resends what was not acknowledged.
    std::fs::remove_file(&filler).unwrap();
    let mut wrapper = hub.wrapper(&created).await;
    for (seq, mark) in &sent {
        wrapper
            .send(*seq, SessionUpdate::AgentMessageChunk { text: big(mark) })
            .await;
    }
    wrapper.wait_ack(last_sent).await;
    assert_eq!(prompt(&hub, &sid, "prompt-after").await.status(), 202);

    // Everything stored, in order and once: what was stored before the refusal
    // (prompts and acknowledged updates interleave by arrival), then the rest.
    let marks = history(&hub, &sid).await;
    let mut expected = stored.clone();
    for (_, mark) in &sent {
        if !expected.contains(mark) {
            expected.push(mark.clone());
        }
    }
    expected.push("prompt-after".into());
    let mut got = marks.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every write exactly once");
    assert_eq!(marks.last().map(String::as_str), Some("prompt-after"));
    assert!(!marks.contains(&refused));
    wrapper.close().await;
    hub.stop().await;
}

/// The marks of the session's whole history, oldest first.
async fn history(hub: &TestHub, sid: &str) -> Vec<String> {
    let page = hub
        .json(&format!("/api/sessions/{sid}/messages?after=0&limit=500"))
        .await;
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(mark_of)
        .collect()
}
