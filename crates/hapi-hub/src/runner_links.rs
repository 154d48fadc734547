//! Runners that are connected right now, and the RPCs in flight to them.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use hapi_protocol::{ErrorBody, ErrorCode, HubMachineFrame, MachineRpc, RpcOutcome};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::metrics::{LinkKind, Metrics, RelayFailure};

/// One connected runner.
pub(crate) struct RunnerLink {
    conn_id: u64,
    frames: mpsc::UnboundedSender<HubMachineFrame>,
    next_rpc: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<RpcOutcome>>>,
}

impl RunnerLink {
    /// Resolves the RPC `id` with the runner's answer; unknown ids (answers after a
    /// timeout) are ignored.
    pub(crate) fn resolve(&self, id: u64, outcome: RpcOutcome) {
        if let Some(waiter) = self.pending.lock().expect("rpc map poisoned").remove(&id) {
            let _ = waiter.send(outcome);
        }
    }
}

/// Registry of connected runners, one per machine (a newer connection replaces an
/// older one).
pub(crate) struct RunnerLinks {
    next_conn: AtomicU64,
    by_machine: Mutex<HashMap<String, Arc<RunnerLink>>>,
    metrics: Metrics,
}

impl RunnerLinks {
    /// An empty registry that counts connects, heartbeats and failed RPCs in `metrics`.
    pub(crate) fn new(metrics: Metrics) -> Self {
        RunnerLinks {
            next_conn: AtomicU64::new(0),
            by_machine: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// How many runners are linked.
    pub(crate) fn connected(&self) -> usize {
        self.by_machine.lock().expect("runner links poisoned").len()
    }

    /// Registers a runner's connection.
    pub(crate) fn register(&self, machine_id: &str, frames: mpsc::UnboundedSender<HubMachineFrame>) -> Arc<RunnerLink> {
        let link = Arc::new(RunnerLink {
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            frames,
            next_rpc: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        });
        self.by_machine
            .lock()
            .expect("runner links poisoned")
            .insert(machine_id.to_owned(), link.clone());
        self.metrics.link_connected(LinkKind::Runner, machine_id);
        self.metrics.runner_linked(machine_id);
        link
    }

    /// Removes the connection if it is still the registered one. Its pending RPCs
    /// fail when their senders drop.
    pub(crate) fn unregister(&self, machine_id: &str, link: &RunnerLink) -> bool {
        let mut map = self.by_machine.lock().expect("runner links poisoned");
        if map
            .get(machine_id)
            .is_some_and(|current| current.conn_id == link.conn_id)
        {
            map.remove(machine_id);
            self.metrics.runner_unlinked(machine_id);
            return true;
        }
        false
    }

    /// Calls the machine's runner and waits for its answer: the outer error is
    /// about reaching the runner (offline, timeout), the inner one is the
    /// runner's own refusal, with its code.
    pub(crate) async fn call(
        &self,
        machine_id: &str,
        call: MachineRpc,
        timeout: Duration,
    ) -> Result<Result<serde_json::Value, ErrorBody>, ApiError> {
        let offline = || {
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::MachineOffline,
                "the machine's runner is not connected (start it with `hapi runner start`)",
            )
        };
        let failed = |failure| self.metrics.relay_failed(failure);
        let link = self
            .by_machine
            .lock()
            .expect("runner links poisoned")
            .get(machine_id)
            .cloned()
            .ok_or_else(|| {
                failed(RelayFailure::RunnerOffline);
                offline()
            })?;
        let id = link.next_rpc.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.pending.lock().expect("rpc map poisoned").insert(id, tx);
        if link.frames.send(HubMachineFrame::Rpc { id, call }).is_err() {
            link.pending.lock().expect("rpc map poisoned").remove(&id);
            failed(RelayFailure::RunnerLinkClosed);
            return Err(offline());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(RpcOutcome::Ok(value))) => Ok(Ok(value)),
            Ok(Ok(RpcOutcome::Err(e))) => Ok(Err(e)),
            Ok(Err(_)) => {
                failed(RelayFailure::RunnerLinkClosed);
                Err(offline())
            }
            Err(_) => {
                link.pending.lock().expect("rpc map poisoned").remove(&id);
                failed(RelayFailure::RunnerTimeout);
                Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::RunnerTimeout,
                    format!("the runner did not answer within {} s", timeout.as_secs()),
                ))
            }
        }
    }
}
