//! `approval`: permission request → SSE → decision → `Decide` command at the wrapper.
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use hapi_protocol::{
    ApprovalState, Decision, EventPayload, HubEvent, HubFrame, PermissionOption, SessionCommand, SessionFrame,
    SessionUpdate,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::hub::{Hub, HubMode};
use crate::procs::Bins;
use crate::report::{Row, print_table};
use crate::stats::{Summary, fmt_ns};

#[derive(clap::Args, Clone, Debug)]
pub struct ApprovalArgs {
    /// Measured round trips (after 50 unmeasured ones).
    #[arg(long, default_value_t = 1000)]
    pub rounds: u64,
}

const WARMUP: u64 = 50;
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: &ApprovalArgs, mode: HubMode, bins: &Bins) -> Result<Vec<Row>> {
    println!(
        "\n# approval: {} sequential round trips after {WARMUP} warm-up ones (hub: {mode:?})",
        args.rounds
    );
    let hub = Hub::start(mode, bins).await?;
    let session = hub.create_session().await?;
    let ws = hub.wrapper(&session).await?;
    let (mut sink, mut stream) = ws.split();

    // The wrapper's incoming commands.
    let (cmd_tx, mut commands) = mpsc::unbounded_channel::<(Instant, u64, SessionCommand)>();
    let wrapper_reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(t) = msg
                && let Ok(HubFrame::Command { id, command }) = serde_json::from_str::<HubFrame>(&t)
                && cmd_tx.send((Instant::now(), id, command)).is_err()
            {
                break;
            }
        }
    });
    // Pending approvals as the SSE client sees them.
    let mut sse = hub.sse_with_ticket().await?;
    let (ap_tx, mut approvals) = mpsc::unbounded_channel::<(Instant, String, String)>();
    let sse_reader = tokio::spawn(async move {
        while let Ok(Some(ev)) = sse.next().await {
            let at = Instant::now();
            if !ev.data.contains("\"type\":\"approval\"") {
                continue;
            }
            if let Ok(HubEvent {
                payload: EventPayload::Approval { approval },
                ..
            }) = serde_json::from_str(&ev.data)
                && approval.state == ApprovalState::Pending
            {
                let marker = approval
                    .input
                    .get("command")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_owned();
                if ap_tx.send((at, approval.id, marker)).is_err() {
                    break;
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut total = Vec::new();
    let mut to_sse = Vec::new();
    let mut decide_leg = Vec::new();
    let mut post_rtt = Vec::new();
    for i in 0..WARMUP + args.rounds {
        let request_id = format!("req-{i}");
        let marker = format!("echo {i}");
        let frame = SessionFrame::Update {
            client_seq: i + 1,
            update: SessionUpdate::PermissionRequest {
                request_id: request_id.clone(),
                tool_call_id: None,
                tool: "Bash".into(),
                input: serde_json::json!({ "command": marker }),
                options: vec![
                    PermissionOption {
                        id: "allow".into(),
                        kind: Decision::AllowOnce,
                    },
                    PermissionOption {
                        id: "deny".into(),
                        kind: Decision::RejectOnce,
                    },
                ],
            },
        };
        let text = serde_json::to_string(&frame)?;
        let t0 = Instant::now();
        sink.send(Message::Text(text.into())).await?;
        let (t1, approval_id) = loop {
            let (at, id, m) = tokio::time::timeout(STEP_TIMEOUT, approvals.recv())
                .await
                .context("no approval event on SSE within 10 s")?
                .context("the event stream ended")?;
            if m == marker {
                break (at, id);
            }
        };
        let r = hub
            .http
            .post(format!("{}/api/approvals/{approval_id}", hub.url))
            .bearer_auth(&hub.token)
            .json(&serde_json::json!({ "decision": "allow_once" }))
            .send()
            .await?;
        let t2 = Instant::now();
        if !r.status().is_success() {
            bail!("POST /api/approvals/{approval_id}: {}", r.status());
        }
        let _ = r.bytes().await;
        let (t3, cmd_id) = loop {
            let (at, id, command) = tokio::time::timeout(STEP_TIMEOUT, commands.recv())
                .await
                .context("no Decide command at the wrapper within 10 s")?
                .context("the session link ended")?;
            if let SessionCommand::Decide {
                request_id: rid,
                decision,
                ..
            } = command
                && rid == request_id
            {
                if decision != Decision::AllowOnce {
                    bail!("wrong decision relayed: {decision:?}");
                }
                break (at, id);
            }
        };
        // A real wrapper acknowledges the command, so the outbox stays empty.
        let ack = serde_json::to_string(&SessionFrame::CommandAck { id: cmd_id })?;
        sink.send(Message::Text(ack.into())).await?;
        if i >= WARMUP {
            total.push((t3 - t0).as_nanos() as u64);
            to_sse.push((t1 - t0).as_nanos() as u64);
            decide_leg.push((t3 - t1).as_nanos() as u64);
            post_rtt.push((t2 - t1).as_nanos() as u64);
        }
    }
    wrapper_reader.abort();
    sse_reader.abort();
    let total = Summary::new(total);
    let rows = vec![
        Row::new("approval", "round trip p50", fmt_ns(total.percentile(50.0)), "-", ""),
        Row::new(
            "approval",
            "round trip p99",
            fmt_ns(total.percentile(99.0)),
            "≤ 5 ms",
            "-",
        ),
    ];
    let detail = vec![
        Row::new("approval", "round trip", total.line(), "", ""),
        Row::new(
            "approval",
            "  request → SSE approval event",
            Summary::new(to_sse).line(),
            "",
            "",
        ),
        Row::new(
            "approval",
            "  SSE event → Decide at wrapper",
            Summary::new(decide_leg).line(),
            "",
            "",
        ),
        Row::new(
            "approval",
            "  POST /api/approvals answered",
            Summary::new(post_rtt).line(),
            "",
            "",
        ),
    ];
    print_table("approval", &[rows.clone(), detail].concat());
    Ok(rows)
}
