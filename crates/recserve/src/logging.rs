//! The service log: tracing events as JSON lines on stdout (or readable text on stderr with
//! `--log-format text`), filtered by `--log-level` / `RUST_LOG`, and the same events into the
//! store once `serve` has opened it ([`attach`]).
//!
//! This module owns the tracing subscriber and [`StoreLayer`], which turns each event into a
//! [`ServiceRecord`]: level, target, message, the other fields as a JSON object, and the
//! `request_id` of the innermost enclosing span that has one (the transports open a `request`
//! span per request), so that service events correlate with request-log records. Events from
//! before the store is attached are kept (up to [`EARLY_EVENTS`]) and written once it is.

use crate::cli::LogArgs;
use recserve_store::{LogRecord, LogSink, ServiceRecord};
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Events kept from before the store is attached.
pub const EARLY_EVENTS: usize = 1000;

/// Where service events go once the store is open.
#[derive(Default)]
struct Destination {
    sink: OnceLock<(LogSink, Option<String>)>,
    early: Mutex<Vec<ServiceRecord>>,
}

static DESTINATION: OnceLock<Destination> = OnceLock::new();

fn destination() -> &'static Destination {
    DESTINATION.get_or_init(Destination::default)
}

/// Sends service events to the store's writer from now on (the first call wins), with the
/// events buffered since start-up. `replica` names this process in fleet mode.
pub fn attach(sink: LogSink, replica: Option<String>) {
    let dest = destination();
    if dest.sink.set((sink.clone(), replica.clone())).is_err() {
        return;
    }
    let early = std::mem::take(&mut *dest.early.lock().unwrap_or_else(|e| e.into_inner()));
    for mut record in early {
        record.replica = replica.clone();
        sink.submit(LogRecord::Service(record));
    }
}

/// Sets up the subscriber; `default_format` applies when `--log-format` is not given (`serve`
/// logs JSON lines, the interactive commands readable text).
pub fn init(args: &LogArgs, default_format: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&args.log_level));
    let registry = tracing_subscriber::registry().with(filter).with(StoreLayer);
    let result = if args.log_format.as_deref().unwrap_or(default_format) == "json" {
        registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stdout)).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// The request id a span carries.
struct SpanRequestId(String);

/// Collects an event's message and fields.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    request_id: Option<String>,
    others: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        match field.name() {
            "message" => {
                self.message = Some(match value {
                    serde_json::Value::String(s) => s,
                    v => v.to_string(),
                })
            }
            "request_id" => self.request_id = value.as_str().map(str::to_string).or_else(|| Some(value.to_string())),
            name => {
                self.others.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

/// The tracing layer that writes service events into the store.
pub struct StoreLayer;

impl<S> Layer<S> for StoreLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().fields().field("request_id").is_none() {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(request_id), Some(span)) = (fields.request_id, ctx.span(id)) {
            span.extensions_mut().insert(SpanRequestId(request_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // The store's own driver logs every statement at debug level; writing those back into
        // the store would feed on itself.
        if meta.target().starts_with("sqlx") && *meta.level() > tracing::Level::WARN {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let request_id = fields.request_id.take().or_else(|| {
            ctx.event_scope(event)?.find_map(|span| span.extensions().get::<SpanRequestId>().map(|r| r.0.clone()))
        });
        let record = ServiceRecord {
            time_ms: recserve_telemetry::store::now_ms(),
            replica: None,
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: fields.message.unwrap_or_default(),
            fields: serde_json::Value::Object(fields.others).to_string(),
            request_id,
        };
        let dest = destination();
        match dest.sink.get() {
            Some((sink, replica)) => {
                let record = ServiceRecord { replica: replica.clone(), ..record };
                sink.submit(LogRecord::Service(record));
            }
            None => {
                let mut early = dest.early.lock().unwrap_or_else(|e| e.into_inner());
                if early.len() < EARLY_EVENTS {
                    early.push(record);
                }
            }
        }
    }
}
