//! Support and reporting: reports over the store (JSON and CSV), the help
//! desk's service summary, and the usage collector that samples `get_usage`
//! of live services on a schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use provisio_sdk::{CallOptions, invoke};
use provisio_store::{clients, configurations, jobs, now_ms, products, reports, services};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::principal::Principal;
use crate::worker::no_room;
use crate::{EngineError, Queries, Worker, params};

/// The reports there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    /// Services per configuration and capacity used.
    Capacity,
    /// Jobs succeeded and failed per day, blueprint and configuration.
    Jobs,
    /// Time from paid to active, p50 and p95, per product and overall.
    Activation,
    /// Failed jobs and services that need staff.
    Attention,
    /// Usage per service and day (the day's highest sample of each metric).
    UsageServices,
    /// Usage per configuration and day (the sum over its services).
    UsageConfigurations,
}

impl ReportKind {
    /// Every report.
    pub const ALL: [ReportKind; 6] = [
        ReportKind::Capacity,
        ReportKind::Jobs,
        ReportKind::Activation,
        ReportKind::Attention,
        ReportKind::UsageServices,
        ReportKind::UsageConfigurations,
    ];

    /// Its name in paths and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Capacity => "capacity",
            ReportKind::Jobs => "jobs",
            ReportKind::Activation => "activation",
            ReportKind::Attention => "attention",
            ReportKind::UsageServices => "usage-services",
            ReportKind::UsageConfigurations => "usage-configurations",
        }
    }

    /// The report of a name.
    pub fn parse(name: &str) -> Option<ReportKind> {
        ReportKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A report: named columns and rows of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub kind: ReportKind,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Report {
    /// As JSON: the period and the rows as objects.
    pub fn to_json(&self, from: i64, to: i64) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| Value::Object(self.columns.iter().map(|c| (*c).to_owned()).zip(row.iter().cloned()).collect()))
            .collect();
        json!({"report": self.kind.name(), "from": day(from), "to": day(to), "columns": self.columns, "rows": rows})
    }

    /// As CSV with a header line (RFC 4180 quoting).
    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.columns).expect("writing to memory");
        for row in &self.rows {
            writer.write_record(row.iter().map(cell)).expect("writing to memory");
        }
        String::from_utf8(writer.into_inner().expect("writing to memory")).expect("CSV of UTF-8 is UTF-8")
    }
}

/// A value as a CSV cell: strings bare, null empty, the rest as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        // A text a spreadsheet would run as a formula is kept as text.
        Value::String(s) if s.starts_with(['=', '+', '-', '@']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The numbers in a usage answer, by metric: `{"disk_mb": {"used": 5}}`
/// and `{"connections": 3}` give `disk_mb` 5 and `connections` 3.
fn metrics_of(data: &Value) -> Vec<(String, f64)> {
    data.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let number = value.as_f64().or_else(|| value.get("used").and_then(Value::as_f64))?;
            Some((key.clone(), number))
        })
        .collect()
}

/// How long a summary's live answers are reused.
const SUMMARY_CACHE: Duration = Duration::from_secs(30);

fn summary_cache() -> &'static Mutex<HashMap<i64, (Instant, Value)>> {
    static CACHE: OnceLock<Mutex<HashMap<i64, (Instant, Value)>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

impl Queries {
    /// A report over `[from, to)` (Unix milliseconds); a period that ends
    /// before it starts is empty.
    pub async fn report(&self, kind: ReportKind, from: i64, to: i64) -> Result<Report, EngineError> {
        let to = to.max(from);
        let (columns, rows): (Vec<&'static str>, Vec<Vec<Value>>) = match kind {
            ReportKind::Capacity => {
                let found =
                    self.engine.store().read(|conn| Box::pin(async move { reports::capacity(conn).await })).await?;
                let rows = found
                    .into_iter()
                    .map(|(name, blueprint, enabled, max, live, all)| {
                        let used = max.filter(|m| *m > 0).map(|m| (live as f64 * 1000.0 / m as f64).round() / 10.0);
                        vec![
                            json!(name),
                            json!(blueprint),
                            json!(enabled),
                            json!(live),
                            json!(all),
                            json!(max),
                            json!(used),
                        ]
                    })
                    .collect();
                (
                    vec![
                        "configuration",
                        "blueprint",
                        "enabled",
                        "live_services",
                        "all_services",
                        "max_services",
                        "used_percent",
                    ],
                    rows,
                )
            }
            ReportKind::Jobs => {
                let found = self
                    .engine
                    .store()
                    .read(move |conn| Box::pin(async move { reports::jobs_per_day(conn, from, to).await }))
                    .await?;
                let rows = found
                    .into_iter()
                    .map(|(day, blueprint, configuration, ok, failed)| {
                        vec![json!(day), json!(blueprint), json!(configuration), json!(ok), json!(failed)]
                    })
                    .collect();
                (vec!["day", "blueprint", "configuration", "succeeded", "failed"], rows)
            }
            ReportKind::Activation => {
                let found = self
                    .engine
                    .store()
                    .read(move |conn| Box::pin(async move { reports::activations(conn, from, to).await }))
                    .await?;
                let mut by_product: BTreeMap<String, Vec<f64>> = BTreeMap::new();
                let mut overall = Vec::new();
                for (_, product, paid_at, active_at) in found {
                    let seconds = (active_at - paid_at).max(0) as f64 / 1000.0;
                    by_product.entry(product).or_default().push(seconds);
                    overall.push(seconds);
                }
                let row = |name: &str, mut values: Vec<f64>| {
                    values.sort_by(f64::total_cmp);
                    vec![
                        json!(name),
                        json!(values.len()),
                        json!(percentile(&values, 50.0)),
                        json!(percentile(&values, 95.0)),
                    ]
                };
                let mut rows: Vec<Vec<Value>> = by_product.into_iter().map(|(p, v)| row(&p, v)).collect();
                rows.push(row("(all)", overall));
                (vec!["product", "services", "p50_seconds", "p95_seconds"], rows)
            }
            ReportKind::Attention => {
                let found =
                    self.engine.store().read(|conn| Box::pin(async move { reports::attention(conn).await })).await?;
                let rows = found
                    .into_iter()
                    .map(|(kind, service, product, what, message, at)| {
                        let at = chrono::DateTime::from_timestamp_millis(at).map(|t| t.to_rfc3339());
                        vec![json!(kind), json!(service), json!(product), json!(what), json!(message), json!(at)]
                    })
                    .collect();
                (vec!["kind", "service_id", "product", "function_or_status", "message", "at"], rows)
            }
            ReportKind::UsageServices | ReportKind::UsageConfigurations => {
                let found = self
                    .engine
                    .store()
                    .read(move |conn| Box::pin(async move { reports::samples(conn, from, to).await }))
                    .await?;
                // The day's highest sample per service and metric.
                let mut peaks: BTreeMap<(i64, String, String, String), f64> = BTreeMap::new();
                for (service, configuration, day, data) in found {
                    for (metric, value) in metrics_of(&data) {
                        let peak =
                            peaks.entry((service, configuration.clone(), day.clone(), metric)).or_insert(f64::MIN);
                        *peak = peak.max(value);
                    }
                }
                if kind == ReportKind::UsageServices {
                    let rows = peaks
                        .into_iter()
                        .map(|((service, configuration, day, metric), v)| {
                            vec![json!(service), json!(configuration), json!(day), json!(metric), json!(v)]
                        })
                        .collect();
                    (vec!["service_id", "configuration", "day", "metric", "peak"], rows)
                } else {
                    let mut sums: BTreeMap<(String, String, String), (f64, i64)> = BTreeMap::new();
                    for ((_, configuration, day, metric), v) in peaks {
                        let entry = sums.entry((configuration, day, metric)).or_insert((0.0, 0));
                        entry.0 += v;
                        entry.1 += 1;
                    }
                    let rows = sums
                        .into_iter()
                        .map(|((configuration, day, metric), (total, services))| {
                            vec![json!(configuration), json!(day), json!(metric), json!(total), json!(services)]
                        })
                        .collect();
                    (vec!["configuration", "day", "metric", "total_of_peaks", "services"], rows)
                }
            }
        };
        Ok(Report { kind, columns, rows })
    }

    /// The help desk's view of a service: where it lives, its latest jobs
    /// with their user-safe messages, and live `get_info` / `get_usage`
    /// (reused for 30 seconds).
    pub async fn service_summary(&self, principal: &Principal, service_id: i64) -> Result<Value, EngineError> {
        let (service, product, client, configuration, recent) = self
            .engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let service = services::get(conn, service_id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
                    let product = products::get(conn, service.product_id).await?;
                    let client = clients::get(conn, service.client_id).await?;
                    let configuration = match service.configuration_id {
                        Some(id) => configurations::get(conn, id).await?.map(|c| c.name),
                        None => None,
                    };
                    let filter = jobs::JobFilter { service_id: Some(service_id), limit: 10, ..Default::default() };
                    let recent = jobs::list(conn, &filter).await?;
                    Ok::<_, EngineError>((service, product, client, configuration, recent))
                })
            })
            .await?;
        let live = self.live(principal, &service).await;
        let jobs: Vec<Value> = recent
            .into_iter()
            .map(|j| {
                json!({"id": j.id, "function": j.function, "state": j.state, "message": j.message,
                            "attempts": j.attempts, "origin": j.origin})
            })
            .collect();
        Ok(json!({
            "service": {"id": service.id, "external_id": service.external_id, "status": service.status,
                        "identifier": service.identifier, "last_error": service.last_error},
            "product": product.map(|p| json!({"slug": p.slug, "name": p.name, "blueprint": p.blueprint})),
            "client": client.map(|c| json!({"id": c.id, "external_id": c.external_id, "name": c.name, "email": c.email})),
            "configuration": configuration,
            "jobs": jobs,
            "live": live,
        }))
    }

    async fn live(&self, principal: &Principal, service: &provisio_store::models::Service) -> Value {
        if let Some((at, value)) = summary_cache().lock().expect("summary cache lock").get(&service.id)
            && at.elapsed() < SUMMARY_CACHE
        {
            return value.clone();
        }
        if !matches!(service.status.as_str(), "active" | "suspended") {
            return json!(null);
        }
        // Live answers are provider calls: for those who may make them.
        if principal.scope().is_some_and(|s| s < provisio_store::models::Scope::Operate) {
            return json!({"omitted": "live answers need the operate scope"});
        }
        let mut live = Map::new();
        for function in ["get_info", "get_usage"] {
            let answer = match self.engine.actions().run_action(principal, service.id, function, json!({})).await {
                Ok(outcome) => json!(outcome.envelope.map(|e| e.for_client())),
                Err(err) => json!({"status": "error", "message": err.to_string()}),
            };
            live.insert(function.to_owned(), answer);
        }
        let value = json!({"at": chrono::Utc::now().to_rfc3339(), "answers": live});
        let mut cache = summary_cache().lock().expect("summary cache lock");
        cache.retain(|_, (at, _)| at.elapsed() < SUMMARY_CACHE);
        cache.insert(service.id, (Instant::now(), value.clone()));
        value
    }
}

impl Worker {
    /// Samples `get_usage` of live services, each about once per
    /// `Settings::usage_interval`, one call at a time spread over the
    /// interval, skipping a configuration with no room under its limits.
    pub async fn collect_usage(&self, shutdown: impl Future<Output = ()>) {
        let Some(interval) = self.engine.settings().usage_interval else { return };
        let blueprints: Vec<&'static str> = self
            .engine
            .registry()
            .blueprints()
            .iter()
            .filter(|b| b.function("get_usage").is_some())
            .map(|b| b.id)
            .collect();
        tokio::pin!(shutdown);
        loop {
            let list = blueprints.clone();
            let due = self
                .engine
                .store()
                .read(move |conn| Box::pin(async move { reports::due_for_sampling(conn, &list, 1000).await }))
                .await
                .unwrap_or_default();
            let cutoff = now_ms() - interval.as_millis() as i64;
            let due: Vec<i64> = due.into_iter().filter(|(_, last)| *last <= cutoff).map(|(id, _)| id).collect();
            let pause = (interval / (due.len().max(1) as u32)).min(Duration::from_secs(5));
            for service_id in &due {
                if let Err(err) = self.sample_usage(*service_id).await {
                    tracing::debug!(service = service_id, error = %err, "usage not sampled");
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            if due.is_empty() {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause.max(Duration::from_millis(200))) => {}
                }
            }
        }
    }

    /// Samples one service's usage now, if its configuration has room.
    pub async fn sample_usage(&self, service_id: i64) -> Result<bool, EngineError> {
        let (service, product, client, configuration, room) = self
            .engine
            .store()
            .read(move |conn| {
                Box::pin(async move {
                    let (service, product, client) = crate::service_record(conn, service_id).await?;
                    let configuration_id =
                        service.configuration_id.ok_or_else(|| EngineError::Conflict("not deployed".into()))?;
                    let configuration = configurations::get(conn, configuration_id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound("no configuration".into()))?;
                    let in_flight = jobs::running_on(conn, configuration_id).await?;
                    let recent = match configuration.rate_per_minute {
                        Some(_) => jobs::attempts_since_on(conn, configuration_id, now_ms() - 60_000).await?,
                        None => 0,
                    };
                    let room = configuration.enabled && no_room(&configuration, in_flight, recent).is_none();
                    Ok::<_, EngineError>((service, product, client, configuration, room))
                })
            })
            .await?;
        if !room {
            return Ok(false);
        }
        let blueprint =
            self.engine.registry().blueprint(&product.blueprint).map_err(|e| EngineError::Conflict(e.to_string()))?;
        let Some(descriptor) = blueprint.function("get_usage") else { return Ok(false) };
        let entry = self
            .engine
            .registry()
            .provider(&format!("{}/{}", configuration.blueprint, configuration.provider))
            .map_err(|e| EngineError::Conflict(e.to_string()))?
            .clone();
        let values = self.engine.configuration_values(&configuration)?;
        let params =
            params::build(descriptor, blueprint.service_identifier, &service, &client, &Map::new(), &json!({}));
        let options = CallOptions {
            timeout: self.engine.settings().call_timeout,
            provision_data: service.provision_data.as_object().cloned().unwrap_or_default(),
            owner: Some(service.owner_mark.clone()),
            ..CallOptions::default()
        };
        let report = invoke::call(&entry, &values, "get_usage", &params, &options).await;
        self.engine.metrics().call(&configuration.name, "get_usage", report.duration_ms);
        let Some(data) = report.envelope.data.clone().filter(|_| report.envelope.is_ok()) else {
            return Ok(false);
        };
        let configuration_id = Some(configuration.id);
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move { reports::add_sample(conn, service_id, configuration_id, &data).await })
            })
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 10.0);
        assert_eq!(percentile(&values, 95.0), 19.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn usage_numbers_are_read_from_used_fields_and_plain_numbers() {
        let data = json!({"disk_mb": {"used": 12.5, "limit": 100}, "connections": 3, "name": "x"});
        assert_eq!(metrics_of(&data), vec![("disk_mb".to_owned(), 12.5), ("connections".to_owned(), 3.0)]);
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        assert_eq!(cell(&json!("=HYPERLINK(1)")), "'=HYPERLINK(1)");
        assert_eq!(cell(&json!(-5)), "-5");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let report = Report {
            kind: ReportKind::Attention,
            columns: vec!["a", "b"],
            rows: vec![vec![json!("x, \"y\""), json!(null)]],
        };
        assert_eq!(report.to_csv(), "a,b\n\"x, \"\"y\"\"\",\n");
    }
}
