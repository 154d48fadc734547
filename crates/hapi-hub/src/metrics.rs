//! Prometheus metrics of one hub, served by `GET /metrics` (see
//! `docs/operations.md` for what each one tells an operator).
//!
//! Every hub has its own recorder: nothing is installed process-wide, so the
//! hubs a test process (or an app) runs side by side never mix their numbers.
//! Events are counted through handles registered on that recorder; values that
//! are cheap to read when asked (sessions by state, pending approvals, file
//! sizes, link counts, heartbeat ages) are set just before each render.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hapi_protocol::{DecisionChannel, SessionState};
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Metric names, exactly as exported.
pub(crate) mod names {
    /// Gauge, always 1, labelled with the hub's `version`.
    pub const BUILD_INFO: &str = "hapi_build_info";
    /// Gauge: seconds since the hub started.
    pub const UPTIME: &str = "hapi_uptime_seconds";
    /// Gauge by `state`: sessions in the database.
    pub const SESSIONS: &str = "hapi_sessions";
    /// Gauge: approvals waiting for a decision.
    pub const APPROVALS_PENDING: &str = "hapi_approvals_pending";
    /// Histogram by `channel`: from an approval's request to its decision.
    pub const APPROVAL_LATENCY: &str = "hapi_approval_latency_seconds";
    /// Counter by `source`: history entries stored.
    pub const MESSAGES_INGESTED: &str = "hapi_messages_ingested_total";
    /// Counter by `target` and `reason`: commands and RPCs not delivered.
    pub const RELAY_FAILURES: &str = "hapi_relay_failures_total";
    /// Gauge by `link`: wrapper and runner links connected now.
    pub const LINKS: &str = "hapi_links";
    /// Counter by `link`: link connects.
    pub const LINK_CONNECTS: &str = "hapi_link_connects_total";
    /// Counter by `link`: connects of a session or machine that had connected
    /// to this hub before.
    pub const LINK_RECONNECTS: &str = "hapi_link_reconnects_total";
    /// Gauge by `transport`: live event followers.
    pub const EVENT_CLIENTS: &str = "hapi_event_clients";
    /// Gauge: size of `hapi.db`.
    pub const DB_SIZE: &str = "hapi_db_size_bytes";
    /// Gauge: size of `hapi.db-wal`.
    pub const DB_WAL_SIZE: &str = "hapi_db_wal_size_bytes";
    /// Gauge by `machine_id`: seconds since the runner's last hello or alive.
    pub const RUNNER_HEARTBEAT_AGE: &str = "hapi_runner_heartbeat_age_seconds";
    /// Gauge by `machine_id`: 1 while the machine's runner is linked.
    pub const RUNNER_LINKED: &str = "hapi_runner_linked";
    /// Gauge: 1 while phone access is on and its tunnel (or LAN listener) is up.
    pub const TUNNEL_UP: &str = "hapi_tunnel_up";
    /// Counter: tunnel start failures and losses since phone access was turned on.
    pub const TUNNEL_FAILURES: &str = "hapi_tunnel_failures_total";
    /// Counter: sessions this machine's runner restarted (`HAPI_SESSION_RESTART`).
    pub const SESSION_RESTARTS: &str = "hapi_session_restarts_total";
    /// Counter: sessions the kernel killed for their memory limit.
    pub const SESSION_OOM_KILLS: &str = "hapi_session_oom_kills_total";
    /// Gauge: 1 when the runner can apply memory and CPU limits (a writable cgroup, v2 or v1).
    pub const SESSION_CGROUP_LIMITS: &str = "hapi_session_cgroup_limits";
    /// Counter by `model` and `kind`: tokens the agents reported.
    pub const TOKENS: &str = "hapi_tokens_total";
}

/// Buckets of the approval latency: a policy answers in milliseconds, a person
/// in seconds to minutes, sometimes after an hour.
pub(crate) const APPROVAL_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Every decision channel, so each has a (possibly empty) histogram from the start.
const CHANNELS: [DecisionChannel; 6] = [
    DecisionChannel::Web,
    DecisionChannel::DesktopWindow,
    DecisionChannel::DesktopNotification,
    DecisionChannel::Phone,
    DecisionChannel::Policy,
    DecisionChannel::Cli,
];

/// The session states, in the order they are exported.
pub(crate) const SESSION_STATES: [SessionState; 5] = [
    SessionState::Starting,
    SessionState::Idle,
    SessionState::Working,
    SessionState::Disconnected,
    SessionState::Ended,
];

static METADATA: Metadata<'static> = Metadata::new("hapi_hub", Level::INFO, Some(module_path!()));

/// Where a stored history entry came from.
#[derive(Clone, Copy)]
pub(crate) enum Source {
    /// A session wrapper's update.
    Wrapper,
    /// A prompt sent through the API.
    Api,
}

/// The two kinds of long-lived links.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LinkKind {
    /// A session wrapper (`hapi claude`).
    Wrapper,
    /// A machine's runner.
    Runner,
}

impl LinkKind {
    fn as_str(self) -> &'static str {
        match self {
            LinkKind::Wrapper => "wrapper",
            LinkKind::Runner => "runner",
        }
    }
}

/// How an event follower receives the live events.
#[derive(Clone, Copy)]
pub(crate) enum Transport {
    /// `GET /api/events`.
    Sse,
    /// `GET /api/events/ws`.
    WebSocket,
    /// A subscriber in the hub's own process: the desktop app's tray and
    /// notifications ([`crate::AppState::follow_events`]).
    InProcess,
}

/// Why a command or RPC was not delivered.
#[derive(Clone, Copy)]
pub(crate) enum RelayFailure {
    /// A session command found no wrapper connected; it waits in the outbox and
    /// is replayed when the wrapper reconnects.
    WrapperDisconnected,
    /// An RPC found no runner linked for the machine.
    RunnerOffline,
    /// The runner's link closed before the RPC was sent or answered.
    RunnerLinkClosed,
    /// The runner did not answer in time.
    RunnerTimeout,
}

impl RelayFailure {
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            RelayFailure::WrapperDisconnected => ("session", "wrapper_disconnected"),
            RelayFailure::RunnerOffline => ("runner", "runner_offline"),
            RelayFailure::RunnerLinkClosed => ("runner", "link_closed"),
            RelayFailure::RunnerTimeout => ("runner", "timeout"),
        }
    }

    const ALL: [RelayFailure; 4] = [
        RelayFailure::WrapperDisconnected,
        RelayFailure::RunnerOffline,
        RelayFailure::RunnerLinkClosed,
        RelayFailure::RunnerTimeout,
    ];
}

/// What the hub knows about a machine's runner since it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunnerBeat {
    /// The runner's last hello or alive frame.
    pub last: Instant,
    /// Its link is connected now.
    pub linked: bool,
    /// It said `shutting_down` on its last link (it stopped on purpose).
    pub stopping: bool,
}

/// Values read when a scrape asks for them.
pub(crate) struct Scrape {
    /// Sessions per state (states not listed have none).
    pub sessions: Vec<(SessionState, u64)>,
    /// Pending approvals.
    pub approvals_pending: u64,
    /// Connected wrapper links.
    pub wrapper_links: usize,
    /// Connected runner links.
    pub runner_links: usize,
    /// Size of the database file.
    pub db_bytes: u64,
    /// Size of its WAL file.
    pub wal_bytes: u64,
    /// Phone access: whether its tunnel is up, and its failures so far.
    pub tunnel_up: bool,
    /// Failures of the current tunnel (0 when phone access is off).
    pub tunnel_failures: u64,
    /// From this `$HAPI_HOME`'s runner state file, if a runner wrote one.
    pub runner_sessions: Option<RunnerSessions>,
}

/// What the runner of the hub's own `$HAPI_HOME` reports about sessions in its
/// state file (counts since that runner started).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunnerSessions {
    pub restarts: u64,
    pub oom_kills: u64,
    pub cgroup_ready: bool,
}

/// One hub's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    started: Instant,
    ingested_wrapper: Counter,
    ingested_api: Counter,
    event_clients_sse: Gauge,
    event_clients_ws: Gauge,
    event_clients_in_process: Gauge,
    /// Sessions and machines that linked to this hub at least once.
    linked_before: Mutex<HashSet<(LinkKind, String)>>,
    runners: Mutex<HashMap<String, RunnerBeat>>,
}

impl Metrics {
    /// A fresh recorder with every metric described and registered at zero.
    pub(crate) fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .with_recommended_naming(true)
            .set_buckets_for_metric(Matcher::Full(names::APPROVAL_LATENCY.into()), APPROVAL_LATENCY_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        describe(&recorder);
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: &[(&'static str, &'static str)]| {
            recorder.register_counter(&key(name, labels), &METADATA)
        };
        let gauge = |name: &'static str, labels: &[(&'static str, &'static str)]| {
            recorder.register_gauge(&key(name, labels), &METADATA)
        };
        gauge(names::BUILD_INFO, &[("version", hapi_protocol::VERSION)]).set(1.0);
        // Every labelled series exists from the first scrape, at zero, so that
        // `rate()` and `increase()` see its first event.
        for failure in RelayFailure::ALL {
            let (target, reason) = failure.labels();
            counter(names::RELAY_FAILURES, &[("target", target), ("reason", reason)]).absolute(0);
        }
        for link in [LinkKind::Wrapper, LinkKind::Runner] {
            counter(names::LINK_CONNECTS, &[("link", link.as_str())]).absolute(0);
            counter(names::LINK_RECONNECTS, &[("link", link.as_str())]).absolute(0);
        }
        for channel in CHANNELS {
            // Registering is what creates the (empty) histogram.
            let _empty = recorder.register_histogram(
                &key(names::APPROVAL_LATENCY, &[("channel", channel.as_str())]),
                &METADATA,
            );
        }
        let inner = Inner {
            ingested_wrapper: counter(names::MESSAGES_INGESTED, &[("source", "wrapper")]),
            ingested_api: counter(names::MESSAGES_INGESTED, &[("source", "api")]),
            event_clients_sse: gauge(names::EVENT_CLIENTS, &[("transport", "sse")]),
            event_clients_ws: gauge(names::EVENT_CLIENTS, &[("transport", "websocket")]),
            event_clients_in_process: gauge(names::EVENT_CLIENTS, &[("transport", "in_process")]),
            started: Instant::now(),
            linked_before: Mutex::new(HashSet::new()),
            runners: Mutex::new(HashMap::new()),
            recorder,
            handle,
        };
        Metrics { inner: Arc::new(inner) }
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.inner.recorder.register_counter(&key(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.inner
            .recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// A history entry was committed.
    pub(crate) fn message_ingested(&self, source: Source) {
        match source {
            Source::Wrapper => self.inner.ingested_wrapper.increment(1),
            Source::Api => self.inner.ingested_api.increment(1),
        }
    }

    /// A usage update was stored (not a resend): its tokens, by model and kind.
    pub(crate) fn usage_recorded(&self, usage: &hapi_protocol::Usage) {
        let kinds = [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ];
        for (kind, n) in kinds {
            let labels = vec![Label::new("model", usage.model.clone()), Label::new("kind", kind)];
            self.inner
                .recorder
                .register_counter(&Key::from_parts(names::TOKENS, labels), &METADATA)
                .increment(n);
        }
    }

    /// An approval was decided `latency` after it was requested.
    pub(crate) fn approval_decided(&self, channel: DecisionChannel, latency: Duration) {
        let histogram: Histogram = self.inner.recorder.register_histogram(
            &key(names::APPROVAL_LATENCY, &[("channel", channel.as_str())]),
            &METADATA,
        );
        histogram.record(latency.as_secs_f64());
    }

    /// A command or RPC could not be delivered.
    pub(crate) fn relay_failed(&self, failure: RelayFailure) {
        let (target, reason) = failure.labels();
        self.counter(names::RELAY_FAILURES, &[("target", target), ("reason", reason)])
            .increment(1);
    }

    /// A wrapper (by session id) or runner (by machine id) linked; a second
    /// link of the same id within this hub's life is a reconnect.
    pub(crate) fn link_connected(&self, link: LinkKind, id: &str) {
        self.counter(names::LINK_CONNECTS, &[("link", link.as_str())])
            .increment(1);
        let first = self
            .inner
            .linked_before
            .lock()
            .expect("link set poisoned")
            .insert((link, id.to_owned()));
        if !first {
            self.counter(names::LINK_RECONNECTS, &[("link", link.as_str())])
                .increment(1);
        }
    }

    /// An event follower started; it counts until the guard drops.
    pub(crate) fn event_client(&self, transport: Transport) -> EventClient {
        let gauge = match transport {
            Transport::Sse => self.inner.event_clients_sse.clone(),
            Transport::WebSocket => self.inner.event_clients_ws.clone(),
            Transport::InProcess => self.inner.event_clients_in_process.clone(),
        };
        gauge.increment(1.0);
        EventClient { gauge }
    }

    fn beat(&self, machine_id: &str, f: impl FnOnce(&mut RunnerBeat)) {
        let mut runners = self.inner.runners.lock().expect("runner beats poisoned");
        let beat = runners.entry(machine_id.to_owned()).or_insert(RunnerBeat {
            last: Instant::now(),
            linked: false,
            stopping: false,
        });
        f(beat);
    }

    /// A runner's link said hello.
    pub(crate) fn runner_linked(&self, machine_id: &str) {
        self.beat(machine_id, |b| {
            *b = RunnerBeat {
                last: Instant::now(),
                linked: true,
                stopping: false,
            }
        });
    }

    /// A linked runner said it is alive (or hello again).
    pub(crate) fn runner_alive(&self, machine_id: &str) {
        self.beat(machine_id, |b| b.last = Instant::now());
    }

    /// A runner said it is shutting down.
    pub(crate) fn runner_stopping(&self, machine_id: &str) {
        self.beat(machine_id, |b| b.stopping = true);
    }

    /// A runner's link closed.
    pub(crate) fn runner_unlinked(&self, machine_id: &str) {
        self.beat(machine_id, |b| b.linked = false);
    }

    /// The machine's runner as last heard of; `None` if it never linked to this hub.
    pub(crate) fn runner(&self, machine_id: &str) -> Option<RunnerBeat> {
        self.inner
            .runners
            .lock()
            .expect("runner beats poisoned")
            .get(machine_id)
            .copied()
    }

    /// Folds recorded histogram samples into their buckets; the hub runs this
    /// every few seconds so samples never pile up between scrapes.
    pub(crate) fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// Sets the values read at scrape time and renders everything in the
    /// Prometheus text format.
    pub(crate) fn render(&self, scrape: &Scrape) -> String {
        let gauge = |name: &'static str, labels: &[(&'static str, &'static str)]| {
            self.inner.recorder.register_gauge(&key(name, labels), &METADATA)
        };
        gauge(names::UPTIME, &[]).set(self.inner.started.elapsed().as_secs_f64());
        for state in SESSION_STATES {
            let n = scrape.sessions.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            gauge(names::SESSIONS, &[("state", state.as_str())]).set(n as f64);
        }
        gauge(names::APPROVALS_PENDING, &[]).set(scrape.approvals_pending as f64);
        gauge(names::LINKS, &[("link", "wrapper")]).set(scrape.wrapper_links as f64);
        gauge(names::LINKS, &[("link", "runner")]).set(scrape.runner_links as f64);
        gauge(names::DB_SIZE, &[]).set(scrape.db_bytes as f64);
        gauge(names::DB_WAL_SIZE, &[]).set(scrape.wal_bytes as f64);
        gauge(names::TUNNEL_UP, &[]).set(if scrape.tunnel_up { 1.0 } else { 0.0 });
        // The tunnel supervisor counts; a new tunnel starts again from 0, which
        // Prometheus reads as a counter reset.
        self.inner
            .recorder
            .register_counter(&key(names::TUNNEL_FAILURES, &[]), &METADATA)
            .absolute(scrape.tunnel_failures);
        if let Some(runner) = scrape.runner_sessions {
            let counter = |name| self.inner.recorder.register_counter(&key(name, &[]), &METADATA);
            counter(names::SESSION_RESTARTS).absolute(runner.restarts);
            counter(names::SESSION_OOM_KILLS).absolute(runner.oom_kills);
            gauge(names::SESSION_CGROUP_LIMITS, &[]).set(if runner.cgroup_ready { 1.0 } else { 0.0 });
        }
        let runners: Vec<(String, RunnerBeat)> = self
            .inner
            .runners
            .lock()
            .expect("runner beats poisoned")
            .iter()
            .map(|(id, beat)| (id.clone(), *beat))
            .collect();
        for (machine_id, beat) in runners {
            let label = || vec![Label::new("machine_id", machine_id.clone())];
            self.gauge(names::RUNNER_HEARTBEAT_AGE, label())
                .set(beat.last.elapsed().as_secs_f64());
            self.gauge(names::RUNNER_LINKED, label())
                .set(if beat.linked { 1.0 } else { 0.0 });
        }
        self.inner.handle.render()
    }
}

/// Keeps an event follower counted while it lives.
pub(crate) struct EventClient {
    gauge: Gauge,
}

impl Drop for EventClient {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    let labels: Vec<Label> = labels.iter().map(|&(k, v)| Label::new(k, v)).collect();
    Key::from_parts(name, labels)
}

/// `# HELP` lines (and units) of every metric.
fn describe(recorder: &PrometheusRecorder) {
    let text = |s: &'static str| SharedString::const_str(s);
    let seconds = Some(Unit::Seconds);
    let bytes = Some(Unit::Bytes);
    let gauges: [(&'static str, Option<Unit>, &'static str); 12] = [
        (
            names::BUILD_INFO,
            None,
            "Always 1; the version label is the hub's version.",
        ),
        (names::UPTIME, seconds, "Seconds since the hub started."),
        (names::SESSIONS, None, "Sessions in the database, by state."),
        (names::APPROVALS_PENDING, None, "Approvals waiting for a decision."),
        (
            names::LINKS,
            None,
            "Wrapper links (running sessions) and runner links connected now.",
        ),
        (names::EVENT_CLIENTS, None, "Live event followers, by transport."),
        (names::DB_SIZE, bytes, "Size of hapi.db."),
        (
            names::DB_WAL_SIZE,
            bytes,
            "Size of hapi.db-wal (folded back by checkpoints every second).",
        ),
        (
            names::RUNNER_HEARTBEAT_AGE,
            seconds,
            "Seconds since the machine's runner last said hello or alive (runners seen since the hub started).",
        ),
        (
            names::RUNNER_LINKED,
            None,
            "1 while the machine's runner is linked, else 0.",
        ),
        (
            names::TUNNEL_UP,
            None,
            "1 while phone access is on and reachable (its health probe passed), else 0.",
        ),
        (
            names::SESSION_CGROUP_LIMITS,
            None,
            "1 when this machine's runner can apply memory and CPU limits (a writable cgroup, v2 or v1), else 0.",
        ),
    ];
    for (name, unit, help) in gauges {
        recorder.describe_gauge(name.into(), unit, text(help));
    }
    let counters: [(&'static str, &'static str); 8] = [
        (
            names::TOKENS,
            "Tokens the agents reported, by model and kind (input, output, cache_read, cache_write).",
        ),
        (
            names::MESSAGES_INGESTED,
            "History entries stored, by source (wrapper updates, API prompts).",
        ),
        (
            names::RELAY_FAILURES,
            "Commands and RPCs that could not be delivered, by target and reason.",
        ),
        (names::LINK_CONNECTS, "Wrapper and runner link connects."),
        (
            names::LINK_RECONNECTS,
            "Connects of a session's wrapper or a machine's runner that had linked to this hub before.",
        ),
        (
            names::TUNNEL_FAILURES,
            "Phone access tunnel failures (failed starts and losses) since it was turned on.",
        ),
        (
            names::SESSION_RESTARTS,
            "Sessions this machine's runner restarted after a failure, since the runner started.",
        ),
        (
            names::SESSION_OOM_KILLS,
            "Sessions killed for their memory limit, since this machine's runner started.",
        ),
    ];
    for (name, help) in counters {
        recorder.describe_counter(name.into(), None, text(help));
    }
    recorder.describe_histogram(
        names::APPROVAL_LATENCY.into(),
        seconds,
        text("Seconds from an approval's request to its decision, by the channel that decided it."),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_scrape() -> Scrape {
        Scrape {
            sessions: vec![(SessionState::Idle, 2)],
            approvals_pending: 1,
            wrapper_links: 2,
            runner_links: 0,
            db_bytes: 4096,
            wal_bytes: 0,
            tunnel_up: false,
            tunnel_failures: 0,
            runner_sessions: None,
        }
    }

    #[test]
    fn two_hubs_never_mix_their_numbers() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.message_ingested(Source::Wrapper);
        a.message_ingested(Source::Wrapper);
        b.message_ingested(Source::Api);
        let a = a.render(&empty_scrape());
        let b = b.render(&empty_scrape());
        assert!(
            a.contains("hapi_messages_ingested_total{source=\"wrapper\"} 2\n"),
            "{a}"
        );
        assert!(a.contains("hapi_messages_ingested_total{source=\"api\"} 0\n"), "{a}");
        assert!(
            b.contains("hapi_messages_ingested_total{source=\"wrapper\"} 0\n"),
            "{b}"
        );
        assert!(b.contains("hapi_messages_ingested_total{source=\"api\"} 1\n"), "{b}");
    }

    #[test]
    fn second_link_of_the_same_id_is_a_reconnect() {
        let m = Metrics::new();
        m.link_connected(LinkKind::Wrapper, "s1");
        m.link_connected(LinkKind::Wrapper, "s2");
        m.link_connected(LinkKind::Wrapper, "s1");
        m.link_connected(LinkKind::Runner, "s1");
        let text = m.render(&empty_scrape());
        assert!(
            text.contains("hapi_link_connects_total{link=\"wrapper\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("hapi_link_reconnects_total{link=\"wrapper\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hapi_link_reconnects_total{link=\"runner\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn latency_lands_in_its_channel_and_bucket() {
        let m = Metrics::new();
        m.approval_decided(DecisionChannel::Phone, Duration::from_secs(7));
        let text = m.render(&empty_scrape());
        assert!(
            text.contains("# TYPE hapi_approval_latency_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("hapi_approval_latency_seconds_bucket{channel=\"phone\",le=\"5\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("hapi_approval_latency_seconds_bucket{channel=\"phone\",le=\"10\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hapi_approval_latency_seconds_count{channel=\"web\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn event_clients_count_while_the_guard_lives() {
        let m = Metrics::new();
        let guard = m.event_client(Transport::Sse);
        assert!(
            m.render(&empty_scrape())
                .contains("hapi_event_clients{transport=\"sse\"} 1\n")
        );
        drop(guard);
        assert!(
            m.render(&empty_scrape())
                .contains("hapi_event_clients{transport=\"sse\"} 0\n")
        );
        let desktop = m.event_client(Transport::InProcess);
        assert!(
            m.render(&empty_scrape())
                .contains("hapi_event_clients{transport=\"in_process\"} 1\n")
        );
        drop(desktop);
    }
}
