//! `GET /events`: past events (`since`), then live ones until `until` or the client leaves;
//! one JSON object per line.
use super::{ApiError, AppState, Params};
use crate::events::{parse_time, Event, EventFilter};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

fn time_param(p: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    match p.str(key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_time(s).map(Some).ok_or_else(|| ApiError::bad_request(format!("failed to parse value {s} as a time for {key}"))),
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

async fn events(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let since = time_param(&p, "since")?;
    let until = time_param(&p, "until")?;
    let filter = EventFilter::new(p.filters()?)?;
    // As dockerd: `until` alone replays the whole history up to it.
    let (past, rx) = st.events.subscribe_since(since.or(until.map(|_| 0)));
    let (tx, out) = mpsc::channel::<Bytes>(64);
    // Owned by its request: it ends when the client goes away (the body's receiver drops).
    tokio::spawn(forward(past, rx, filter, until, tx));
    let stream = futures_util::stream::unfold(out, |mut out| async move {
        let b = out.recv().await?;
        Some((Ok::<_, std::io::Error>(b), out))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response())
}

fn line(e: &Event) -> Bytes {
    let mut v = serde_json::to_vec(e).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

async fn forward(past: Vec<Event>, mut rx: broadcast::Receiver<Event>, filter: EventFilter, until: Option<i64>, tx: mpsc::Sender<Bytes>) {
    let before_until = |e: &Event| until.is_none_or(|u| e.time_nano <= u);
    for e in past.iter().filter(|e| before_until(e) && filter.matches(e)) {
        if tx.send(line(e)).await.is_err() {
            return;
        }
    }
    loop {
        let left = match until {
            Some(u) => {
                let n = u - now_nanos();
                if n <= 0 {
                    return;
                }
                Duration::from_nanos(n as u64)
            }
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            r = rx.recv() => match r {
                Ok(e) => {
                    if !before_until(&e) {
                        return;
                    }
                    if filter.matches(&e) && tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "events client too slow; events dropped"),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(left) => {}
            _ = tx.closed() => return,
        }
    }
}
