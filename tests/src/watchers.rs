//! Clients that watch a job the three ways users do: SSE, WebSocket, and the `drover`
//! CLI (over HTTP or straight from NATS).

use crate::stack::{ADMIN_TOKEN, Stack};
use drover_shared::sse::SseParser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Longest any watcher in a test may take.
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// Reads `GET /jobs/{id}/logs/stream` until the server ends it; `last_event_id` goes in
/// the `Last-Event-ID` header when given.
pub async fn sse_events(stack: &Stack, job_id: u64, last_event_id: Option<u64>) -> Vec<SseEvent> {
    let client = reqwest::Client::new();
    let mut request = client
        .get(format!("{}/jobs/{job_id}/logs/stream", stack.http))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last.to_string());
    }
    let response = request.send().await.expect("SSE request");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.expect("SSE chunk");
            for event in parser.push(&chunk) {
                events.push(SseEvent {
                    id: event.id,
                    event: event.event,
                    data: serde_json::from_str(&event.data).expect("SSE data is JSON"),
                });
            }
        }
    };
    tokio::time::timeout(WATCH_TIMEOUT, read)
        .await
        .expect("the SSE stream ends once the job is finished");
    events
}

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(stack: &Stack) -> WsStream {
    let url = format!(
        "{}/ws?token={ADMIN_TOKEN}",
        stack.http.replacen("http", "ws", 1)
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

pub async fn ws_send(socket: &mut WsStream, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("websocket send");
}

/// Next JSON message, or `None` when the server closed the socket.
pub async fn ws_next(socket: &mut WsStream) -> Option<Value> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).expect("JSON")),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Subscribes to one job's log and collects its `log` messages until its `end`.
pub async fn ws_follow(stack: &Stack, job_id: u64) -> (Vec<Value>, Value) {
    let mut socket = ws_connect(stack).await;
    ws_send(
        &mut socket,
        json!({"action": "subscribe", "jobs": [job_id]}),
    )
    .await;
    let mut lines = Vec::new();
    let read = async {
        while let Some(message) = ws_next(&mut socket).await {
            match message["type"].as_str() {
                Some("log") => lines.push(message),
                Some("end") => return message,
                Some("error") => panic!("websocket error: {message}"),
                _ => {}
            }
        }
        panic!("websocket closed before the job's end");
    };
    let end = tokio::time::timeout(WATCH_TIMEOUT, read)
        .await
        .expect("the job ends in time");
    (lines, end)
}

/// Runs the `drover` CLI against the stack; resolves to stdout and the exit code.
pub fn drover_cli(
    stack: &Stack,
    args: &[&str],
) -> impl std::future::Future<Output = (String, i32)> + use<> {
    let mut command = tokio::process::Command::new(crate::bin_dir().join("drover"));
    command
        .args(args)
        .env("DROVER_URL", &stack.http)
        .env("DROVER_TOKEN", ADMIN_TOKEN);
    async move {
        let output = tokio::time::timeout(WATCH_TIMEOUT, command.output())
            .await
            .expect("drover finishes in time")
            .expect("drover runs");
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            output.status.code().unwrap_or(-1),
        )
    }
}

/// `(line_number, content)` of every log line printed by `drover tail`.
pub fn cli_lines(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.trim_start().split_once(' ')?;
            let number = number.parse().ok()?;
            // "LEVEL   content": the level is padded to 7 characters.
            let content = rest.get(8..).unwrap_or("").to_owned();
            Some((number, content))
        })
        .collect()
}
