//! The runner itself: taking the lock (or taking over from an older runner),
//! tracking and spawning sessions, serving the control server, beating, and
//! shutting down cleanly.
//!
//! [`RunnerHandle`] is the seam for everything that drives a runner: the control
//! server uses it today, and the hub link will call the same methods for the
//! hub's spawn-session, stop-session and stop-runner RPCs. [`HubLink`] is the
//! seam the other way: what the runner tells the hub.
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::cgroup::{CgroupStatus, Cgroups};
use crate::client::ControlClient;
use crate::config::RunnerConfig;
use crate::error::{Result, RunnerError};
use crate::heartbeat::{Beat, Heartbeat};
use crate::limits::{CGROUP_ENV, RestartPolicy, SESSION_NOTE_ENV};
use crate::lock::{LockOutcome, RunnerLock};
use crate::process::ProcessId;
use crate::sessions::{SessionRegistry, SessionTarget, TrackedSession};
use crate::spawn::{SpawnRequest, SpawnedSession, check_agent, session_command, session_log_path};
use crate::state::{
    RunnerState, SessionsReport, load_or_create_token, mtime_ms, now_rfc3339, remove_if_present, state_path,
};

/// What the runner tells the hub. The hub link (machine WebSocket, a later
/// step) implements it; every method has a do-nothing default.
pub trait HubLink: Send + Sync + 'static {
    /// A session started being tracked.
    fn session_started(&self, _session: &TrackedSession) {}
    /// A session ended or was stopped.
    fn session_ended(&self, _session: &TrackedSession) {}
    /// The runner is shutting down ("shutting-down" state on the hub).
    fn shutting_down(&self) {}
}

/// No hub link: the runner works locally only.
pub struct NoHubLink;

impl HubLink for NoHubLink {}

struct Shared {
    config: RunnerConfig,
    token: String,
    registry: SessionRegistry,
    link: Arc<dyn HubLink>,
    /// Spawned sessions waiting to report themselves, by PID.
    pending: Mutex<HashMap<u32, oneshot::Sender<String>>>,
    stop: watch::Sender<bool>,
    /// Where session cgroups (memory and CPU limits) are created, if anywhere.
    cgroups: Cgroups,
    /// PIDs of sessions stopped on request: their exit is no failure.
    stopped: Mutex<HashSet<u32>>,
    /// Failed runner-spawned sessions, for the restart task.
    failures: mpsc::UnboundedSender<Failure>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    restarts: AtomicU64,
    oom_kills: AtomicU64,
    failed_exits: AtomicU64,
}

/// Session counters since the runner started, for a metrics exporter (each
/// also has a log line: `[RUNNER RESTART]` and `[RUNNER LIMIT]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Restarts attempted under `HAPI_SESSION_RESTART`.
    pub restarts: u64,
    /// Sessions whose processes the kernel killed for their memory limit.
    pub oom_kills: u64,
    /// Runner-spawned sessions that exited with a failure (not stopped on request).
    pub failed_exits: u64,
}

/// Where a session comes from: a first spawn, or a restart of a failed one.
#[derive(Debug, Clone, Default)]
struct Lineage {
    restarts: u32,
    restart_of: Option<String>,
    note: Option<String>,
}

// Watching spawned sessions until they exit, and restarting failed ones, is
// its own part: its own file.
#[path = "runner_watch.rs"]
mod watch_sessions;
use watch_sessions::{Failure, Watched};

/// Drives a running runner; cheap to clone.
#[derive(Clone)]
pub struct RunnerHandle(Arc<Shared>);

impl RunnerHandle {
    /// The runner's configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.0.config
    }

    /// The control token.
    pub fn token(&self) -> &str {
        &self.0.token
    }

    /// The tracked sessions.
    pub fn sessions(&self) -> Vec<TrackedSession> {
        self.0.registry.list()
    }

    /// Whether session cgroups (memory and CPU limits) can be created.
    pub fn cgroup_status(&self) -> CgroupStatus {
        self.0.cgroups.status()
    }

    /// Restarts, OOM kills and failed exits since the runner started.
    pub fn session_counts(&self) -> SessionCounts {
        let c = &self.0.counters;
        SessionCounts {
            restarts: c.restarts.load(Ordering::Relaxed),
            oom_kills: c.oom_kills.load(Ordering::Relaxed),
            failed_exits: c.failed_exits.load(Ordering::Relaxed),
        }
    }

    /// The `sessions` part of the state file.
    pub fn sessions_report(&self) -> SessionsReport {
        let policy = &self.0.config.sessions;
        let cgroup = self.cgroup_status();
        let counts = self.session_counts();
        SessionsReport {
            limits: policy.limits.to_string(),
            cgroup_ready: matches!(cgroup, CgroupStatus::Ready { .. }),
            cgroup: cgroup.describe(),
            restart: policy.restart.to_string(),
            restart_backoff_ms: policy.restart_backoff.as_millis() as u64,
            start_grace_ms: self.0.config.spawn_timeout.as_millis() as u64,
            restarts: counts.restarts,
            oom_kills: counts.oom_kills,
        }
    }

    /// Records a session that reported itself (`session-started`).
    pub fn session_started(&self, session_id: &str, pid: u32, started_by: &str) -> Result<TrackedSession> {
        let process = ProcessId::of(pid).ok_or_else(|| RunnerError::Refused {
            code: "bad_request".into(),
            message: format!("process {pid} is not running"),
        })?;
        let session = TrackedSession {
            session_id: session_id.to_owned(),
            pid,
            pid_start_time: process.start_time,
            started_by: started_by.to_owned(),
            tracked_since: now_rfc3339(),
            cgroup: None,
            restarts: 0,
            restart_of: None,
        };
        tracing::info!(session = session_id, pid, started_by, "[RUNNER RUN] Session reported");
        self.0.registry.add(session.clone());
        self.0.link.session_started(&session);
        if let Some(waiter) = self.0.pending.lock().expect("pending lock").remove(&pid) {
            let _ = waiter.send(session_id.to_owned());
        }
        Ok(session)
    }

    /// Stops a tracked session: SIGTERM to its process group, SIGKILL after the
    /// grace period. The PID's start time is checked before every signal, so a
    /// reused PID is never signalled.
    pub async fn stop_session(&self, target: &SessionTarget) -> Result<TrackedSession> {
        let session = self
            .0
            .registry
            .find(target)
            .ok_or_else(|| RunnerError::UnknownSession(target.to_string()))?;
        tracing::info!(session = %session.session_id, pid = session.pid, "stopping session");
        self.0.stopped.lock().expect("stopped lock").insert(session.pid);
        let gone = session.process().terminate(self.0.config.stop_grace).await;
        if !gone {
            tracing::warn!(session = %session.session_id, pid = session.pid, "session process did not exit");
        }
        self.0.registry.remove(&session.session_id);
        self.0.link.session_ended(&session);
        Ok(session)
    }

    /// Starts `hapi claude` detached for `request`, and waits until the new
    /// session reports itself; returns its id and PID.
    ///
    /// The directory must be inside the workspace roots; it is created first if
    /// the request says so, and with `worktree_branch` the session runs in a new
    /// git worktree instead (see [`crate::workdir`]). Directory problems are
    /// [`RunnerError::Directory`] with their own codes.
    pub async fn spawn_session(&self, request: SpawnRequest) -> Result<SpawnedSession> {
        let config = &self.0.config;
        check_agent(&request)?;
        let roots = config.workspace_roots.clone();
        let (dir, create) = (request.directory.clone(), request.create_directory);
        let mut cwd = tokio::task::spawn_blocking(move || crate::workdir::prepare_directory(&dir, create, &roots))
            .await
            .map_err(|e| RunnerError::Spawn(format!("directory check failed: {e}")))??;
        if let Some(branch) = &request.worktree_branch {
            cwd = crate::workdir::create_worktree(&cwd, branch, &config.workspace_roots).await?;
        }
        self.start_session(&request, &cwd, Lineage::default()).await
    }

    /// Starts `hapi claude` for `request` in `cwd` (already checked), in a new
    /// session cgroup when limits need one, waits until it reports itself, and
    /// watches it until it exits (for the restart policy).
    async fn start_session(&self, request: &SpawnRequest, cwd: &Path, lineage: Lineage) -> Result<SpawnedSession> {
        let config = &self.0.config;
        let log_path = session_log_path(&config.home)?;
        let mut notes: Vec<String> = lineage.note.iter().cloned().collect();
        let group_name = log_path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("spawn-"))
            .unwrap_or("session")
            .to_owned();
        let limits = config.sessions.limits;
        let cgroup = match self.0.cgroups.create_session_group(&group_name) {
            Ok(group) => group,
            Err(reason) => {
                tracing::warn!(
                    "[RUNNER LIMIT] memory and CPU limits ({}) not applied to a new session: {reason}",
                    limits.cgroup_text()
                );
                notes.push(format!(
                    "Limits not applied: {} (HAPI_SESSION_MEMORY_MAX / HAPI_SESSION_CPU_MAX). No writable cgroup: {reason}. The session runs without them.",
                    limits.cgroup_text()
                ));
                None
            }
        };
        let mut cmd = session_command(&config.cli_path, request, cwd, &log_path)?;
        if let Some(value) = cgroup.as_ref().and_then(crate::cgroup::SessionGroup::encode) {
            cmd.env(CGROUP_ENV, value);
        }
        if !notes.is_empty() {
            cmd.env(SESSION_NOTE_ENV, notes.join("\n"));
        }
        let spawned = cmd
            .spawn()
            .map_err(|e| RunnerError::Spawn(format!("cannot run {}: {e}", config.cli_path.display())));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                if let Some(group) = &cgroup {
                    group.remove();
                }
                return Err(e);
            }
        };
        let Some(pid) = child.id() else {
            if let Some(group) = &cgroup {
                group.remove();
            }
            return Err(RunnerError::Spawn("the session exited at once".into()));
        };
        tracing::info!(pid, dir = %cwd.display(), log = %log_path.display(), cgroup = ?cgroup, restarts = lineage.restarts, "spawned session");
        let (tx, rx) = oneshot::channel();
        self.0.pending.lock().expect("pending lock").insert(pid, tx);
        // It may have reported itself before the waiter was registered.
        let early = self.sessions().into_iter().find(|s| s.pid == pid).map(|s| s.session_id);
        let outcome = match early {
            Some(id) => Ok(id),
            None => tokio::select! {
                id = rx => id.map_err(|_| "the runner is stopping".to_owned()),
                status = child.wait() => Err(match status {
                    Ok(status) => format!("the session exited ({status}) before reporting itself"),
                    Err(e) => format!("cannot wait for the session: {e}"),
                }),
                () = tokio::time::sleep(config.spawn_timeout) => {
                    Err(format!(
                        "the session did not report itself within {:?} (HAPI_SESSION_START_GRACE)",
                        config.spawn_timeout
                    ))
                }
            },
        };
        self.0.pending.lock().expect("pending lock").remove(&pid);
        match outcome {
            Ok(session_id) => {
                self.0.registry.update(&session_id, |s| {
                    s.cgroup = cgroup.clone();
                    s.restarts = lineage.restarts;
                    s.restart_of = lineage.restart_of.clone();
                });
                if let Some(group) = &cgroup {
                    let joined = group.holds(pid);
                    tracing::info!(session = %session_id, pid, %group, joined, "session cgroup");
                }
                // Watched until it ends: reaped (never a zombie), its cgroup
                // removed, and a failure handed to the restart policy.
                let watched = Watched {
                    request: request.clone(),
                    cwd: cwd.to_owned(),
                    session_id: session_id.clone(),
                    pid,
                    cgroup,
                    restarts: lineage.restarts,
                };
                tokio::spawn(self.clone().watch(child, watched));
                Ok(SpawnedSession {
                    session_id,
                    pid,
                    log_path,
                    directory: cwd.to_owned(),
                })
            }
            Err(reason) => {
                if let Some(process) = ProcessId::of(pid) {
                    process.terminate(config.stop_grace).await;
                }
                let _ = child.wait().await;
                if let Some(group) = &cgroup {
                    group.remove();
                }
                Err(RunnerError::Spawn(format!("{reason}; see {}", log_path.display())))
            }
        }
    }

    /// Asks the runner to shut down (sessions keep running).
    pub fn request_stop(&self) {
        self.0.stop.send_replace(true);
    }

    pub(crate) fn prune(&self) {
        for session in self.0.registry.prune() {
            tracing::info!(session = %session.session_id, pid = session.pid, "session process is gone; no longer tracked");
            if let Some(group) = &session.cgroup {
                group.remove();
            }
            self.0.link.session_ended(&session);
        }
    }
}

/// What [`Runner::start`] found.
pub enum StartOutcome {
    /// This process is the runner now.
    Started(Runner),
    /// A runner with the same identity (version and binary mtime) is running.
    AlreadyRunning {
        /// Its state.
        state: RunnerState,
    },
}

/// Why [`Runner::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// Stopped on request or by the shutdown future; state and lock removed.
    Stopped,
    /// Another runner owns the state file now; nothing was removed.
    Superseded,
}

/// A started runner, holding the lock and its control server's socket.
pub struct Runner {
    handle: RunnerHandle,
    lock: RunnerLock,
    listener: tokio::net::TcpListener,
    state: RunnerState,
    failures: mpsc::UnboundedReceiver<Failure>,
}

/// How long to wait for a lock holder to write its state file.
const HOLDER_STATE_WAIT: Duration = Duration::from_secs(15);
/// How long an old runner has to exit after being asked to stop.
const TAKEOVER_WAIT: Duration = Duration::from_secs(15);

impl Runner {
    /// Becomes the runner of `config.home`: takes the lock (recovering a stale
    /// one), or, if a runner of another identity holds it, stops that runner
    /// and takes over. Re-adopts the live sessions, binds the control server
    /// and writes the state file.
    pub async fn start(config: RunnerConfig, link: Arc<dyn HubLink>) -> Result<StartOutcome> {
        crate::state::create_home(&config.home)?;
        let token = load_or_create_token(&config.home)?;
        let mtime = mtime_ms(&config.cli_path)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let lock = loop {
            let home = config.home.clone();
            let outcome = tokio::task::spawn_blocking(move || RunnerLock::try_acquire(&home))
                .await
                .expect("lock task")?;
            let holder = match outcome {
                LockOutcome::Acquired(lock) => break lock,
                LockOutcome::Held(holder) => holder,
            };
            if Instant::now() > deadline {
                return Err(RunnerError::AlreadyRunning { pid: holder.pid });
            }
            let Some(state) = wait_for_holder_state(&config, holder).await? else {
                continue;
            };
            if state.started_with_cli_version == config.cli_version && state.started_with_cli_mtime_ms == mtime {
                return Ok(StartOutcome::AlreadyRunning { state });
            }
            if let Some(app) = &state.embedded_in {
                // The app owns its runner; only the app replaces it.
                tracing::info!(pid = state.pid, app = %app, "the running runner is embedded in an app; not taking over");
                return Ok(StartOutcome::AlreadyRunning { state });
            }
            tracing::info!(
                old_pid = state.pid,
                old_version = %state.started_with_cli_version,
                old_mtime_ms = state.started_with_cli_mtime_ms,
                new_version = %config.cli_version,
                new_mtime_ms = mtime,
                "version mismatch with the running runner: taking over"
            );
            let client = ControlClient::new(state.http_port, &token, Duration::from_secs(10));
            if let Err(e) = client.stop().await {
                tracing::warn!("cannot ask the old runner to stop: {e}");
            }
            if !holder.wait_gone(TAKEOVER_WAIT).await {
                tracing::warn!(pid = holder.pid, "the old runner did not stop; terminating it");
                holder.terminate(config.stop_grace).await;
            }
        };
        let registry = SessionRegistry::load(&config.home)?;
        let cgroups = Cgroups::new(config.sessions.limits, config.sessions.cgroup);
        match cgroups.prepare() {
            CgroupStatus::Unavailable { reason, .. } => tracing::warn!(
                "[RUNNER LIMIT] no writable cgroup: {reason}. The memory and CPU limits ({}) are NOT applied; \
                 sessions run without them",
                config.sessions.limits.cgroup_text()
            ),
            status => tracing::info!(cgroup = %status.describe(), "[RUNNER LIMIT] session cgroups"),
        }
        tracing::info!(
            limits = %config.sessions.limits,
            restart = %config.sessions.restart,
            start_grace_ms = config.spawn_timeout.as_millis() as u64,
            "session policy"
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(RunnerError::Listen)?;
        let port = listener.local_addr().map_err(RunnerError::Listen)?.port();
        let now = now_rfc3339();
        let mut state = RunnerState {
            pid: std::process::id(),
            http_port: port,
            start_time: now.clone(),
            started_with_cli_version: config.cli_version.clone(),
            started_with_cli_mtime_ms: mtime,
            last_heartbeat: now,
            runner_log_path: config.log_path.display().to_string(),
            embedded_in: config.embedded_in.clone(),
            sessions: None,
        };
        let (stop, _) = watch::channel(false);
        let (failures, failed) = mpsc::unbounded_channel();
        let handle = RunnerHandle(Arc::new(Shared {
            config,
            token,
            registry,
            link,
            pending: Mutex::new(HashMap::new()),
            stop,
            cgroups,
            stopped: Mutex::new(HashSet::new()),
            failures,
            counters: Counters::default(),
        }));
        state.sessions = Some(handle.sessions_report());
        state.write(&handle.config().home)?;
        tracing::info!(pid = state.pid, port, version = %handle.config().cli_version, mtime_ms = mtime, sessions = handle.sessions().len(), "runner started");
        Ok(StartOutcome::Started(Runner {
            handle,
            lock,
            listener,
            state,
            failures: failed,
        }))
    }

    /// The handle for this runner.
    pub fn handle(&self) -> RunnerHandle {
        self.handle.clone()
    }

    /// The state file as written at start.
    pub fn state(&self) -> &RunnerState {
        &self.state
    }

    /// Serves the control server and beats until stopped (control `stop`,
    /// [`RunnerHandle::request_stop`] or `shutdown`) or superseded.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<ExitReason> {
        let Runner {
            handle,
            lock,
            listener,
            state,
            mut failures,
        } = self;
        let restarter = tokio::spawn({
            let handle = handle.clone();
            async move {
                while let Some(failure) = failures.recv().await {
                    tokio::spawn(handle.clone().restart(failure));
                }
            }
        });
        let mut server_stop = handle.0.stop.subscribe();
        let app = crate::control::router(handle.clone());
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.wait_for(|stop| *stop).await;
                })
                .into_future(),
        );
        let mut stop = handle.0.stop.subscribe();
        let mut heartbeat = Heartbeat::new(handle.clone(), state);
        let beats = async {
            let mut ticks = tokio::time::interval(handle.config().heartbeat_interval);
            // A slow cycle makes the next tick late: it is skipped, never overlapped.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if heartbeat.beat().await == Beat::Lost {
                    return;
                }
            }
        };
        let reason = tokio::select! {
            () = shutdown => ExitReason::Stopped,
            _ = stop.wait_for(|stop| *stop) => ExitReason::Stopped,
            () = beats => ExitReason::Superseded,
        };
        tracing::info!(?reason, "runner shutting down; sessions keep running");
        handle.0.link.shutting_down();
        handle.request_stop();
        restarter.abort();
        if tokio::time::timeout(Duration::from_secs(5), server).await.is_err() {
            tracing::warn!("the control server did not stop within 5 s");
        }
        if reason == ExitReason::Stopped {
            let home = &handle.config().home;
            if matches!(RunnerState::read(home), Ok(Some(s)) if s.pid == std::process::id()) {
                remove_if_present(&state_path(home));
            }
            lock.release();
        }
        tracing::info!("runner stopped");
        Ok(reason)
    }
}

/// Waits for the lock holder's state file; `None` if the holder died meanwhile.
async fn wait_for_holder_state(config: &RunnerConfig, holder: ProcessId) -> Result<Option<RunnerState>> {
    let deadline = Instant::now() + HOLDER_STATE_WAIT;
    loop {
        if let Some(state) = RunnerState::read(&config.home).ok().flatten()
            && state.pid == holder.pid
        {
            return Ok(Some(state));
        }
        if !holder.is_alive() {
            return Ok(None);
        }
        if Instant::now() > deadline {
            return Err(RunnerError::AlreadyRunning { pid: holder.pid });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
