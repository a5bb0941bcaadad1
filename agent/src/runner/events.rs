//! Reads ansible-runner's `-j` output: one JSON event per line (plain text when Ansible
//! fails before the callback plugin loads). Turns it into numbered, classified log lines,
//! the structured events people query, and the facts the exit-code mapping needs.

use chrono::{DateTime, Utc};
use drover_shared::classify::output_lines;
use drover_shared::protocol::{HostRecap, JobEvent, LogLine};
use drover_shared::{LogLevel, RunOutcome, Termination, classify};
use serde::Deserialize;
use std::collections::HashMap;

/// Longest stored line; longer ones (a huge registered variable) are cut with a note,
/// so one line can never exceed a NATS message.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct RawEvent {
    event: String,
    #[serde(default)]
    counter: u64,
    #[serde(default)]
    stdout: String,
    created: Option<DateTime<Utc>>,
    #[serde(default)]
    event_data: EventData,
}

#[derive(Deserialize, Default)]
struct EventData {
    host: Option<String>,
    task: Option<String>,
    duration: Option<f64>,
    #[serde(default)]
    ignore_errors: Option<bool>,
    res: Option<serde_json::Value>,
    /// `playbook_on_stats`: failed tasks per host.
    failures: Option<HashMap<String, u64>>,
    /// `playbook_on_stats`: unreachable count per host.
    dark: Option<HashMap<String, u64>>,
    ok: Option<HashMap<String, u64>>,
    changed: Option<HashMap<String, u64>>,
    skipped: Option<HashMap<String, u64>>,
    rescued: Option<HashMap<String, u64>>,
    ignored: Option<HashMap<String, u64>>,
    processed: Option<HashMap<String, u64>>,
}

/// What one line of runner output produced.
#[derive(Debug, Default)]
pub struct Produced {
    pub lines: Vec<LogLine>,
    pub event: Option<JobEvent>,
}

/// Keeps the numbering and what the stream has shown so far.
#[derive(Debug, Default)]
pub struct EventReader {
    last_line: u64,
    play_started: bool,
    hosts_failed: u32,
    hosts_unreachable: u32,
    first_error: Option<String>,
    host_recap: Vec<HostRecap>,
}

impl EventReader {
    /// The play recap per host, once `playbook_on_stats` has been read.
    pub fn host_recap(&self) -> &[HostRecap] {
        &self.host_recap
    }

    pub fn last_line(&self) -> u64 {
        self.last_line
    }

    /// The first ERROR line of the run: the job's error summary when it fails.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    /// Reads one line of runner output.
    pub fn feed(&mut self, raw: &str, now: DateTime<Utc>) -> Produced {
        let raw = raw.trim_end();
        if raw.is_empty() {
            return Produced::default();
        }
        match serde_json::from_str::<RawEvent>(raw) {
            Ok(event) => self.feed_event(event, now),
            // Plain text: Ansible printed it before (or instead of) its event callback.
            Err(_) => Produced {
                lines: self.number(raw, None, now),
                event: None,
            },
        }
    }

    fn feed_event(&mut self, raw: RawEvent, now: DateTime<Utc>) -> Produced {
        match raw.event.as_str() {
            "playbook_on_play_start" => self.play_started = true,
            "playbook_on_stats" => {
                self.hosts_failed = count_hosts(raw.event_data.failures.as_ref());
                self.hosts_unreachable = count_hosts(raw.event_data.dark.as_ref());
                self.host_recap = recap(&raw.event_data);
            }
            _ => {}
        }
        let created = raw.created.unwrap_or(now);
        let lines = self.number(&raw.stdout, Some(&raw.event), created);
        let data = raw.event_data;
        let changed = data
            .res
            .as_ref()
            .and_then(|res| res.get("changed"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let failed = match raw.event.as_str() {
            "runner_on_failed" | "runner_item_on_failed" => !data.ignore_errors.unwrap_or(false),
            "runner_on_unreachable" => true,
            _ => false,
        };
        Produced {
            lines,
            event: Some(JobEvent {
                counter: raw.counter,
                event: raw.event,
                host: data.host,
                task: data.task,
                changed,
                failed,
                duration_secs: data.duration,
                created,
            }),
        }
    }

    fn number(&mut self, text: &str, event: Option<&str>, at: DateTime<Utc>) -> Vec<LogLine> {
        output_lines(text)
            .map(|content| {
                self.last_line += 1;
                let log_level = classify(content, event);
                if log_level == LogLevel::Error && self.first_error.is_none() {
                    self.first_error = Some(content.trim().to_owned());
                }
                LogLine {
                    line_number: self.last_line,
                    content: capped(content),
                    log_level,
                    timestamp: at,
                }
            })
            .collect()
    }

    /// The facts the exit-code mapping needs, once the run has ended as `termination`.
    pub fn outcome(&self, termination: Termination) -> RunOutcome {
        RunOutcome {
            termination,
            play_started: self.play_started,
            hosts_failed: self.hosts_failed,
            hosts_unreachable: self.hosts_unreachable,
        }
    }
}

/// The line itself, or its first [`MAX_LINE_BYTES`] with a note of what was cut.
fn capped(content: &str) -> String {
    if content.len() <= MAX_LINE_BYTES {
        return content.to_owned();
    }
    let mut end = MAX_LINE_BYTES;
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} [... {} bytes cut by drover]",
        &content[..end],
        content.len() - end
    )
}

/// Every host named in any of the stats' counters, sorted by name.
fn recap(stats: &EventData) -> Vec<HostRecap> {
    let counters = [
        &stats.ok,
        &stats.changed,
        &stats.failures,
        &stats.dark,
        &stats.skipped,
        &stats.rescued,
        &stats.ignored,
        &stats.processed,
    ];
    let mut hosts: Vec<&String> = counters
        .iter()
        .filter_map(|counter| counter.as_ref())
        .flat_map(|counter| counter.keys())
        .collect();
    hosts.sort();
    hosts.dedup();
    let count = |counter: &Option<HashMap<String, u64>>, host: &str| {
        counter
            .as_ref()
            .and_then(|c| c.get(host))
            .copied()
            .unwrap_or(0)
    };
    hosts
        .into_iter()
        .map(|host| HostRecap {
            host: host.clone(),
            ok: count(&stats.ok, host),
            changed: count(&stats.changed, host),
            failed: count(&stats.failures, host),
            unreachable: count(&stats.dark, host),
            skipped: count(&stats.skipped, host),
            rescued: count(&stats.rescued, host),
            ignored: count(&stats.ignored, host),
        })
        .collect()
}

fn count_hosts(per_host: Option<&HashMap<String, u64>>) -> u32 {
    per_host.map_or(0, |map| map.values().filter(|n| **n > 0).count() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_shared::exit_code;

    /// Trimmed from a real `ansible-runner run -j` of the spec's example playbook.
    const FAILED_RUN: &str = r#"{"uuid": "a", "counter": 1, "stdout": "", "event": "playbook_on_start", "event_data": {}}
{"uuid": "b", "counter": 2, "stdout": "\r\nPLAY [Deploy Application] ******************************************************", "event": "playbook_on_play_start", "event_data": {"play": "Deploy Application"}, "created": "2026-11-28T21:58:25.101Z"}
{"uuid": "c", "counter": 3, "stdout": "\r\nTASK [Gathering Facts] *********************************************************", "event": "playbook_on_task_start", "event_data": {"task": "Gathering Facts"}}
{"uuid": "d", "counter": 5, "stdout": "ok: [web-server-01]", "event": "runner_on_ok", "event_data": {"host": "web-server-01", "task": "Gathering Facts", "duration": 0.9, "res": {"changed": false}}}
{"uuid": "e", "counter": 6, "stdout": "\r\nTASK [Install Nginx] ***********************************************************", "event": "playbook_on_task_start", "event_data": {"task": "Install Nginx"}}
{"uuid": "f", "counter": 8, "stdout": "changed: [web-server-01]", "event": "runner_on_ok", "event_data": {"host": "web-server-01", "task": "Install Nginx", "res": {"changed": true}}}
{"uuid": "g", "counter": 9, "stdout": "\r\nTASK [Start Nginx service] *****************************************************", "event": "playbook_on_task_start", "event_data": {"task": "Start Nginx service"}}
{"uuid": "h", "counter": 11, "stdout": "[ERROR]: Task failed: Action failed: Service not found\r\nOrigin: /tmp/pb.yml:8:7\r\n\r\nfatal: [web-server-01]: FAILED! => {\"changed\": false, \"msg\": \"Service not found\"}", "event": "runner_on_failed", "event_data": {"host": "web-server-01", "task": "Start Nginx service", "ignore_errors": null, "res": {"changed": false}}}
{"uuid": "i", "counter": 12, "stdout": "\r\nPLAY RECAP *********************************************************************\r\nweb-server-01              : ok=2    changed=1    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0   ", "event": "playbook_on_stats", "event_data": {"ok": {"web-server-01": 2}, "changed": {"web-server-01": 1}, "failures": {"web-server-01": 1}, "dark": {}, "skipped": {}, "processed": {"web-server-01": 1}}}
"#;

    fn read_all(output: &str) -> (EventReader, Vec<LogLine>, Vec<JobEvent>) {
        let mut reader = EventReader::default();
        let (mut lines, mut events) = (Vec::new(), Vec::new());
        for raw in output.lines() {
            let produced = reader.feed(raw, Utc::now());
            lines.extend(produced.lines);
            events.extend(produced.event);
        }
        (reader, lines, events)
    }

    #[test]
    fn numbers_and_classifies_a_failed_run() {
        let (reader, lines, events) = read_all(FAILED_RUN);
        let numbers: Vec<u64> = lines.iter().map(|l| l.line_number).collect();
        assert_eq!(numbers, (1..=lines.len() as u64).collect::<Vec<_>>());
        let level_of = |prefix: &str| {
            lines
                .iter()
                .find(|l| l.content.starts_with(prefix))
                .map(|l| l.log_level)
        };
        assert_eq!(level_of("PLAY [Deploy"), Some(LogLevel::Info));
        assert_eq!(level_of("ok: [web"), Some(LogLevel::Info));
        assert_eq!(level_of("changed: [web"), Some(LogLevel::Warning));
        assert_eq!(level_of("fatal: [web"), Some(LogLevel::Error));
        assert_eq!(level_of("Origin:"), Some(LogLevel::Error));
        assert_eq!(level_of("web-server-01  "), Some(LogLevel::Info));
        assert_eq!(events.len(), 9);
        assert!(
            events
                .iter()
                .any(|e| e.event == "runner_on_ok" && e.changed)
        );
        assert!(
            events
                .iter()
                .any(|e| e.event == "runner_on_failed" && e.failed)
        );
        assert_eq!(reader.last_line(), lines.len() as u64);
        assert_eq!(
            reader.first_error(),
            Some("[ERROR]: Task failed: Action failed: Service not found")
        );
        assert_eq!(exit_code(&reader.outcome(Termination::Exited(2))), 1);
        assert_eq!(
            reader.host_recap(),
            [HostRecap {
                host: "web-server-01".into(),
                ok: 2,
                changed: 1,
                failed: 1,
                ..HostRecap::default()
            }]
        );
    }

    #[test]
    fn plain_text_before_the_callback_is_a_syntax_error() {
        let output = "[ERROR]: YAML parsing failed: did not find expected node content.\n\nOrigin: /tmp/bad.yml:3:1\n";
        let (reader, lines, events) = read_all(output);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].log_level, LogLevel::Error);
        assert!(events.is_empty());
        assert_eq!(exit_code(&reader.outcome(Termination::Exited(4))), 2);
    }

    #[test]
    fn huge_lines_are_cut_with_a_note() {
        let huge = format!(
            "{{\"counter\": 1, \"event\": \"runner_on_ok\", \"stdout\": \"{}\"}}",
            "é".repeat(MAX_LINE_BYTES)
        );
        let (_, lines, _) = read_all(&huge);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].content.len() < MAX_LINE_BYTES + 64);
        assert!(
            lines[0]
                .content
                .ends_with(&format!("[... {} bytes cut by drover]", MAX_LINE_BYTES))
        );
    }

    #[test]
    fn unreachable_stats_give_connection_error() {
        let output = r#"{"counter": 1, "stdout": "\r\nPLAY [all] ***", "event": "playbook_on_play_start", "event_data": {}}
{"counter": 4, "stdout": "fatal: [h1]: UNREACHABLE! => {\"unreachable\": true}", "event": "runner_on_unreachable", "event_data": {"host": "h1"}}
{"counter": 5, "stdout": "\r\nPLAY RECAP ***\r\nh1 : ok=0 changed=0 unreachable=1 failed=0", "event": "playbook_on_stats", "event_data": {"failures": {}, "dark": {"h1": 1}}}"#;
        let (reader, lines, _) = read_all(output);
        assert_eq!(lines[1].log_level, LogLevel::Error);
        assert_eq!(exit_code(&reader.outcome(Termination::Exited(4))), 3);
    }
}
