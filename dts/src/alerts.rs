//! Alerts, as the managed migration services have them: the task file's `[[alerts]]` say
//! when (replication lag above a threshold for a while, or the task failed) and what to do
//! (run a command, post JSON to a webhook, or both).
//!
//! ```toml
//! [[alerts]]
//! on = "lag"                 # replication lag ...
//! lag_seconds = 30           # ... above 30 s ...
//! for_seconds = 60           # ... for a minute (default 0: at once)
//! webhook = "https://hooks.example/dts"
//!
//! [[alerts]]
//! on = "failed"              # the task failed
//! command = "mail -s 'dts failed' ops@example < /dev/stdin"
//! ```
//!
//! A lag alert fires once when the lag has stayed above its threshold for `for_seconds`,
//! and once more, with status `resolved`, when the lag falls back to the threshold or below
//! (then it may fire again). A failure alert fires when a run ends with an error (not when
//! it is stopped).
//!
//! The payload is one JSON object (`state` is the step the run is in, for `failed` the one
//! it failed in; `error` and `error_kind` are the run's error, for `failed`):
//!
//! ```json
//! {"task": "shop", "alert": "lag", "status": "firing", "state": "incremental",
//!  "lag_seconds": 42.0, "threshold_seconds": 30, "for_seconds": 60, "error": null,
//!  "error_kind": null, "time": "2026-12-07T08:00:00Z", "labels": {"env": "prod"}}
//! ```
//!
//! A command runs through `sh -c`, with the payload on its standard input and in the
//! environment (`DTS_ALERT`, `DTS_ALERT_STATUS`, `DTS_TASK`, `DTS_ALERT_LAG_SECONDS`,
//! `DTS_ALERT_ERROR`, `DTS_ALERT_JSON`); it gets 30 s. A webhook gets the payload as a
//! `POST` with `Content-Type: application/json` (http, or https verified against the
//! Mozilla roots), 10 s per attempt and 3 attempts; a failure is logged and never stops
//! the task. Neither ever carries a password: the error text is the run's error, which
//! names no password, and the source's and target's passwords are blanked out of it again
//! should one slip in; a webhook URL is logged without its path and query, which often hold
//! a token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dts_core::{Error, ErrorKind, Result};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::metrics::Live;

/// How often a lag alert looks at the lag.
const EVALUATE_EVERY: Duration = Duration::from_millis(250);
/// How long a command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one webhook attempt may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhook attempts before giving up.
const WEBHOOK_ATTEMPTS: u32 = 3;
/// How long the end of a run waits for the alerts in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(40);

/// When an alert fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertOn {
    /// Replication lag above `lag_seconds` for `for_seconds`.
    Lag,
    /// The run failed.
    Failed,
}

impl AlertOn {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lag => "lag",
            Self::Failed => "failed",
        }
    }
}

/// One `[[alerts]]` entry of the task file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// When it fires: `lag` or `failed`.
    pub on: AlertOn,
    /// `lag`: the threshold, in seconds (required, more than 0).
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    /// `lag`: how long the lag must stay above the threshold, in seconds. Default 0.
    #[serde(default)]
    pub for_seconds: Option<u64>,
    /// A shell command run with the alert as JSON on its standard input.
    #[serde(default)]
    pub command: Option<String>,
    /// An `http://` or `https://` URL the alert is posted to as JSON. `${VAR}` is replaced
    /// by the environment variable `VAR` (for tokens kept out of the file).
    #[serde(default)]
    pub webhook: Option<String>,
}

impl std::fmt::Debug for AlertConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertConfig")
            .field("on", &self.on)
            .field("lag_seconds", &self.lag_seconds)
            .field("for_seconds", &self.for_seconds)
            .field("command", &self.command.as_ref().map(|_| "…"))
            .field("webhook", &self.webhook.as_deref().map(webhook_origin))
            .finish()
    }
}

impl AlertConfig {
    /// Checks the entry; `index` names it in errors (`alerts[0]`).
    fn validate(&self, index: usize) -> Result<()> {
        let name = format!("alerts[{index}]");
        match self.on {
            AlertOn::Lag => match self.lag_seconds {
                Some(s) if s > 0.0 && s.is_finite() => {}
                Some(_) => {
                    return Err(Error::config(format!(
                        "{name}: `lag_seconds` must be a number of seconds above 0"
                    )))
                }
                None => {
                    return Err(Error::config(format!(
                        "{name}: a `lag` alert needs `lag_seconds`, the threshold"
                    )))
                }
            },
            AlertOn::Failed => {
                if self.lag_seconds.is_some() || self.for_seconds.is_some() {
                    return Err(Error::config(format!(
                        "{name}: `lag_seconds` and `for_seconds` belong to `lag` alerts"
                    )));
                }
            }
        }
        if self.command.is_none() && self.webhook.is_none() {
            return Err(Error::config(format!(
                "{name}: give a `command`, a `webhook`, or both"
            )));
        }
        if self.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(Error::config(format!("{name}: `command` is empty")));
        }
        if let Some(url) = &self.webhook {
            Webhook::parse(url).map_err(|e| e.context(format_args!("{name}: `webhook`")))?;
        }
        Ok(())
    }
}

/// Checks every `[[alerts]]` entry.
pub(crate) fn validate(alerts: &[AlertConfig]) -> Result<()> {
    alerts
        .iter()
        .enumerate()
        .try_for_each(|(i, a)| a.validate(i))
}

/// Replaces `${VAR}`s in the webhook URLs with `expand`.
pub(crate) fn expand(
    alerts: &mut [AlertConfig],
    expand: impl Fn(&str) -> Result<String>,
) -> Result<()> {
    for a in alerts {
        if let Some(url) = &mut a.webhook {
            *url = expand(url)?;
        }
    }
    Ok(())
}

/// A webhook's address.
#[derive(Clone)]
struct Webhook {
    uri: hyper::Uri,
    tls: bool,
    host: String,
    port: u16,
}

impl Webhook {
    fn parse(url: &str) -> Result<Self> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| Error::config(format!("`{}` is not a URL", webhook_origin(url))))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(Error::config(format!(
                    "`{}`: the scheme must be http or https",
                    webhook_origin(url)
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| Error::config("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(Error::config(format!(
                "`{}`: credentials in the URL are not supported; put a token in its path or \
                 query, from the environment with `${{VAR}}`",
                webhook_origin(url)
            )));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            uri,
            tls,
            host,
            port,
        })
    }
}

/// A webhook URL as logged: scheme, host and port only (the rest often holds a token).
fn webhook_origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<webhook>".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}/…")
}

/// One alert, as sent.
#[derive(Debug, Clone, serde::Serialize)]
struct Payload {
    task: String,
    alert: &'static str,
    status: &'static str,
    state: Option<&'static str>,
    lag_seconds: Option<f64>,
    threshold_seconds: Option<f64>,
    for_seconds: Option<u64>,
    error: Option<String>,
    error_kind: Option<String>,
    time: String,
    labels: BTreeMap<String, String>,
}

/// The alerts of one run.
pub(crate) struct Alerts {
    shared: Arc<Shared>,
    evaluator: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    alerts: Vec<AlertConfig>,
    task: String,
    labels: BTreeMap<String, String>,
    /// Passwords of the source's and target's URLs, blanked out of error texts.
    secrets: Vec<String>,
    live: Arc<Live>,
    deliveries: tokio::sync::Mutex<JoinSet<()>>,
}

impl Alerts {
    /// Starts watching the lag of the run `live` describes, for the task's lag alerts.
    pub(crate) fn start(config: &crate::TaskConfig, live: Arc<Live>) -> Self {
        let secrets = [&config.source.url, &config.target.url]
            .into_iter()
            .filter_map(|u| url_password(u))
            .collect();
        let shared = Arc::new(Shared {
            alerts: config.alerts.clone(),
            task: config.name.clone(),
            labels: config.metrics.labels.clone(),
            secrets,
            live,
            deliveries: tokio::sync::Mutex::new(JoinSet::new()),
        });
        let lag_alerts: Vec<usize> = (0..shared.alerts.len())
            .filter(|&i| shared.alerts[i].on == AlertOn::Lag)
            .collect();
        let evaluator = (!lag_alerts.is_empty()).then(|| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { shared.watch_lag(&lag_alerts).await })
        });
        Self { shared, evaluator }
    }

    /// The run ended with `result`: fires the failure alerts if it failed, and waits (a
    /// bounded time) for the alerts in flight to be delivered.
    pub(crate) async fn finish<T>(self, result: &Result<T>) {
        if let Some(evaluator) = &self.evaluator {
            evaluator.abort();
        }
        if let Err(e) = result {
            if e.kind() != ErrorKind::Interrupted {
                for (i, a) in self.shared.alerts.iter().enumerate() {
                    if a.on == AlertOn::Failed {
                        let mut payload = self.shared.payload(a, "firing");
                        payload.error = Some(self.shared.blank_secrets(&e.report()));
                        payload.error_kind = Some(dts_cdc::metrics::kind_label(e.kind()));
                        self.shared.fire(i, payload).await;
                    }
                }
            }
        }
        let mut deliveries = std::mem::take(&mut *self.shared.deliveries.lock().await);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while deliveries.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("alerts still being delivered when the run ended were abandoned");
        }
    }
}

impl Shared {
    async fn watch_lag(self: Arc<Self>, lag_alerts: &[usize]) {
        // Per alert: since when the lag is above its threshold, and whether it fired.
        let mut above: Vec<(Option<Instant>, bool)> = vec![(None, false); lag_alerts.len()];
        let mut tick = tokio::time::interval(EVALUATE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Outside replication nothing is measured: nothing fires or resolves.
            let Some(lag) = self.live.lag() else {
                continue;
            };
            for (slot, &i) in above.iter_mut().zip(lag_alerts) {
                let a = &self.alerts[i];
                let threshold = a.lag_seconds.unwrap_or(f64::INFINITY);
                let over = lag.as_secs_f64() > threshold;
                if over {
                    let since = *slot.0.get_or_insert_with(Instant::now);
                    let hold = Duration::from_secs(a.for_seconds.unwrap_or(0));
                    if !slot.1 && since.elapsed() >= hold {
                        slot.1 = true;
                        let payload = self.payload(a, "firing");
                        self.fire(i, payload).await;
                    }
                } else {
                    slot.0 = None;
                    if std::mem::take(&mut slot.1) {
                        let payload = self.payload(a, "resolved");
                        self.fire(i, payload).await;
                    }
                }
            }
        }
    }

    fn payload(&self, a: &AlertConfig, status: &'static str) -> Payload {
        let lag = self.live.lag().map(|l| l.as_secs_f64());
        Payload {
            task: self.task.clone(),
            alert: a.on.as_str(),
            status,
            state: self.live.step().map(|s| s.as_str()),
            lag_seconds: lag,
            threshold_seconds: a.lag_seconds,
            for_seconds: match a.on {
                AlertOn::Lag => Some(a.for_seconds.unwrap_or(0)),
                AlertOn::Failed => None,
            },
            error: None,
            error_kind: None,
            time: rfc3339(SystemTime::now()),
            labels: self.labels.clone(),
        }
    }

    fn blank_secrets(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// Sends alert `index` with `payload`, in the background.
    async fn fire(&self, index: usize, payload: Payload) {
        let a = &self.alerts[index];
        tracing::warn!(
            alert = payload.alert,
            status = payload.status,
            lag_seconds = payload.lag_seconds,
            index,
            "alert"
        );
        metrics::counter!(crate::metrics::ALERTS, "alert" => payload.alert, "status" => payload.status)
            .increment(1);
        let json = match serde_json::to_string(&payload) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an alert");
                return;
            }
        };
        let mut deliveries = self.deliveries.lock().await;
        if let Some(command) = &a.command {
            let (command, json, payload) = (command.clone(), json.clone(), payload.clone());
            deliveries.spawn(async move { run_command(index, &command, &json, &payload).await });
        }
        if let Some(url) = &a.webhook {
            match Webhook::parse(url) {
                Ok(hook) => {
                    let json = json.clone();
                    deliveries.spawn(async move { post(index, &hook, json).await });
                }
                Err(e) => tracing::error!(index, error = %e.report(), "alert webhook"),
            }
        }
    }
}

/// The password of a URL's user info, if any.
fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_string())
}

async fn run_command(index: usize, command: &str, json: &str, payload: &Payload) {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("DTS_ALERT", payload.alert)
        .env("DTS_ALERT_STATUS", payload.status)
        .env("DTS_TASK", &payload.task)
        .env(
            "DTS_ALERT_LAG_SECONDS",
            payload
                .lag_seconds
                .map(|l| format!("{l:.3}"))
                .unwrap_or_default(),
        )
        .env("DTS_ALERT_ERROR", payload.error.as_deref().unwrap_or(""))
        .env("DTS_ALERT_JSON", json)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(index, error = %e, "alert command could not start");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(json.as_bytes()).await;
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => {
            tracing::info!(index, "alert command done");
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            tracing::error!(index, status = %out.status, stderr = %stderr.trim(), "alert command failed");
        }
        Ok(Err(e)) => tracing::error!(index, error = %e, "alert command failed"),
        Err(_) => tracing::error!(
            index,
            timeout_s = COMMAND_TIMEOUT.as_secs(),
            "alert command timed out and was killed"
        ),
    }
}

/// Posts `json` to `hook`, retrying a failed attempt twice, a second apart and then two.
async fn post(index: usize, hook: &Webhook, json: String) {
    let origin = webhook_origin(&hook.uri.to_string());
    let body = Bytes::from(json);
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        match tokio::time::timeout(WEBHOOK_TIMEOUT, post_once(hook, body.clone())).await {
            Ok(Ok(())) => {
                tracing::info!(index, webhook = %origin, "alert posted");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(index, webhook = %origin, attempt, error = %e.report(), "alert webhook failed");
            }
            Err(_) => {
                tracing::warn!(index, webhook = %origin, attempt, "alert webhook timed out");
            }
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
    }
    tracing::error!(index, webhook = %origin, attempts = WEBHOOK_ATTEMPTS, "alert not delivered");
}

async fn post_once(hook: &Webhook, body: Bytes) -> Result<()> {
    let io_error = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| Error::new(ErrorKind::Connection, what).with_source(e)
    };
    let tcp = tokio::net::TcpStream::connect((hook.host.as_str(), hook.port))
        .await
        .map_err(io_error("cannot connect"))?;
    if hook.tls {
        let name = rustls::pki_types::ServerName::try_from(hook.host.clone()).map_err(|_| {
            Error::config(format!("`{}` is not a valid TLS server name", hook.host))
        })?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(io_error("TLS handshake failed"))?;
        send(hook, hyper_util::rt::TokioIo::new(tls), body).await
    } else {
        send(hook, hyper_util::rt::TokioIo::new(tcp), body).await
    }
}

async fn send<IO>(hook: &Webhook, io: IO, body: Bytes) -> Result<()>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| Error::new(ErrorKind::Connection, "HTTP failed").with_source(e);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let driver = tokio::spawn(connection);
    let path = hook
        .uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let host = match hook.uri.port_u16() {
        Some(p) => format!("{}:{p}", hook.host),
        None => hook.host.clone(),
    };
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("dts/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| Error::internal(format!("alert request: {e}")))?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    // Read the answer so the connection ends cleanly.
    let _ = response.into_body().collect().await;
    driver.abort();
    if status.is_success() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Connection,
            format!("the webhook answered {status}"),
        ))
    }
}

/// The TLS settings of https webhooks: the ring provider every connection of dts uses
/// (deprecated by rustls for lacking post-quantum key exchange; see `dts-connectors`' TLS
/// module), and the Mozilla roots.
#[allow(deprecated)]
fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(Arc::clone(c));
    }
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::clone(CONFIG.get_or_init(|| Arc::new(config))))
}

/// `t` as RFC 3339 in UTC, to the second (`2026-12-07T08:00:00Z`).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (date, time) = crate::status::utc_date_time(secs);
    format!("{date}T{time}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(toml: &str) -> Result<AlertConfig> {
        let a: AlertConfig = toml::from_str(toml).map_err(|e| Error::config(e.to_string()))?;
        a.validate(0)?;
        Ok(a)
    }

    #[test]
    fn formats_times_as_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // a leap day
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn alert_entries_are_checked() {
        alert("on = \"lag\"\nlag_seconds = 5\nfor_seconds = 10\ncommand = \"true\"").unwrap();
        alert("on = \"failed\"\nwebhook = \"https://hooks.example:8443/x?token=abc\"").unwrap();
        for (toml, says) in [
            ("on = \"lag\"\ncommand = \"true\"", "needs `lag_seconds`"),
            (
                "on = \"lag\"\nlag_seconds = 0\ncommand = \"true\"",
                "above 0",
            ),
            (
                "on = \"failed\"\nlag_seconds = 3\ncommand = \"true\"",
                "belong to `lag`",
            ),
            ("on = \"failed\"", "give a `command`, a `webhook`"),
            ("on = \"failed\"\nwebhook = \"ftp://x/y\"", "http or https"),
            (
                "on = \"failed\"\nwebhook = \"http://u:pw@x/y\"",
                "credentials in the URL",
            ),
            ("on = \"failed\"\ncommand = \" \"", "`command` is empty"),
            ("on = \"soon\"\ncommand = \"true\"", "unknown variant"),
            (
                "on = \"failed\"\ncommand = \"true\"\nevery = 3",
                "unknown field",
            ),
        ] {
            let e = alert(toml).unwrap_err().report();
            assert!(e.contains(says), "{toml}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn the_task_file_checks_metrics_and_alerts() {
        let base = "source.url = \"mysql://root:pw@127.0.0.1:3306\"\n\
                    target.url = \"postgres://postgres@127.0.0.1:5432/postgres\"\n\
                    objects.include = [\"shop\"]\n";
        let parse = |extra: &str| format!("{base}{extra}").parse::<crate::TaskConfig>();
        std::env::set_var("DTS_TEST_HOOK_TOKEN", "tok123");
        let cfg = parse(
            "[metrics]\nlabels = { env = \"prod\" }\n\
             [[alerts]]\non = \"lag\"\nlag_seconds = 5\n\
             webhook = \"https://h.example/x/${DTS_TEST_HOOK_TOKEN}\"\n",
        )
        .unwrap();
        assert_eq!(cfg.metrics.labels["env"], "prod");
        assert_eq!(
            cfg.alerts[0].webhook.as_deref(),
            Some("https://h.example/x/tok123")
        );
        for (extra, says) in [
            ("[metrics]\nlabel = {}\n", "unknown field `label`"),
            (
                "[metrics]\nlabels = { task = \"x\" }\n",
                "metrics label `task`",
            ),
            (
                "[[alerts]]\non = \"lag\"\ncommand = \"true\"\n",
                "alerts[0]",
            ),
            (
                "[[alerts]]\non = \"failed\"\ncommand = \"true\"\n\
                 [[alerts]]\non = \"failed\"\nwebhook = \"gopher://x\"\n",
                "alerts[1]",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(e.report().contains(says), "{extra}: {}", e.report());
        }
    }

    #[test]
    fn secrets_stay_out_of_logs_and_payloads() {
        assert_eq!(
            webhook_origin("https://hooks.example/services/T0/B0/SECRET?x=1"),
            "https://hooks.example/…"
        );
        let a = alert("on = \"failed\"\nwebhook = \"https://h.example/SECRET\"").unwrap();
        assert!(!format!("{a:?}").contains("SECRET"));
        assert_eq!(
            url_password("mysql://app:s3cret@db:3306/x").as_deref(),
            Some("s3cret")
        );
        assert_eq!(url_password("postgres://app@db/x"), None);
    }
}
