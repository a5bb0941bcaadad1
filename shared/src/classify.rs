//! The log-level classifier: which of the spec's levels an Ansible output line gets.
//!
//! The ansible-runner event that produced a line is the strongest hint (a line of a
//! `runner_on_failed` event is an error even when it is a code excerpt); the text decides
//! where the event says nothing.

use crate::domain::LogLevel;

/// Text prefixes that make a line an error, whatever event carried it.
const ERROR_PREFIXES: &[&str] = &["fatal:", "failed:", "ERROR!", "[ERROR]", "unreachable:"];
/// Text prefixes that make a line a warning.
const WARNING_PREFIXES: &[&str] = &["changed:", "[WARNING]", "[DEPRECATION WARNING]"];
/// Verbose connection and module chatter printed at `-vvv`.
const DEBUG_PREFIXES: &[&str] = &[
    "ESTABLISH ",
    "EXEC ",
    "PUT ",
    "SSH: ",
    "Using module file",
    "Pipelining is enabled",
    "Loading ",
    "Using ",
    "META: ",
    "redirecting ",
];

/// Classifies one line of Ansible output. `event` is the ansible-runner event type that
/// printed it, when known (`None` for plain text such as the spec's examples).
pub fn classify(line: &str, event: Option<&str>) -> LogLevel {
    let text = line.trim_start();
    if matches!(
        event,
        Some("runner_on_failed" | "runner_on_unreachable" | "runner_item_on_failed")
    ) || starts_with_any(text, ERROR_PREFIXES)
        || text.contains("UNREACHABLE!")
    {
        return LogLevel::Error;
    }
    if starts_with_any(text, WARNING_PREFIXES) {
        return LogLevel::Warning;
    }
    if matches!(event, Some("verbose" | "debug")) || is_verbose_chatter(text) {
        return LogLevel::Debug;
    }
    LogLevel::Info
}

/// One line of parsed output, numbered from 1 with blank lines left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub line_number: u64,
    pub content: String,
    pub log_level: LogLevel,
}

/// Splits plain Ansible output into numbered, classified lines, as the spec's
/// "Parsed Output Examples" shows: blank lines are dropped, numbering has no gaps.
pub fn parse_ansible_output(output: &str) -> Vec<ParsedLine> {
    output_lines(output)
        .enumerate()
        .map(|(index, content)| ParsedLine {
            line_number: index as u64 + 1,
            content: content.to_owned(),
            log_level: classify(content, None),
        })
        .collect()
}

/// The non-blank lines of a chunk of output, without line endings or colour codes'
/// trailing whitespace. Shared by [`parse_ansible_output`] and the agent's event reader.
pub fn output_lines(output: &str) -> impl Iterator<Item = &str> {
    output
        .split('\n')
        .map(|line| line.trim_end_matches(['\r', ' ']))
        .filter(|line| !line.trim().is_empty())
}

fn starts_with_any(text: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| text.starts_with(prefix))
}

/// `<host> ESTABLISH SSH CONNECTION ...` and friends: verbose output names the host in
/// angle brackets before the action.
fn is_verbose_chatter(text: &str) -> bool {
    let rest = match text.strip_prefix('<') {
        Some(rest) => rest.split_once("> ").map_or(rest, |(_, action)| action),
        None => text,
    };
    starts_with_any(rest, DEBUG_PREFIXES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's "Parsed Output Examples", verbatim.
    const SPEC_OUTPUT: &str = r#"PLAY [Deploy Application] *****************************************

TASK [Gathering Facts] *******************************************
ok: [web-server-01]

TASK [Install Nginx] *********************************************
changed: [web-server-01]

TASK [Start Nginx service] ***************************************
fatal: [web-server-01]: FAILED! => {"msg": "Service not found"}
"#;

    #[test]
    fn reproduces_the_spec_example_line_for_line() {
        let expected = [
            (
                1,
                "PLAY [Deploy Application] *****************************************",
                LogLevel::Info,
            ),
            (
                2,
                "TASK [Gathering Facts] *******************************************",
                LogLevel::Info,
            ),
            (3, "ok: [web-server-01]", LogLevel::Info),
            (
                4,
                "TASK [Install Nginx] *********************************************",
                LogLevel::Info,
            ),
            (5, "changed: [web-server-01]", LogLevel::Warning),
            (
                6,
                "TASK [Start Nginx service] ***************************************",
                LogLevel::Info,
            ),
            (
                7,
                r#"fatal: [web-server-01]: FAILED! => {"msg": "Service not found"}"#,
                LogLevel::Error,
            ),
        ];
        let parsed = parse_ansible_output(SPEC_OUTPUT);
        assert_eq!(parsed.len(), expected.len());
        for (line, (number, content, level)) in parsed.iter().zip(expected) {
            assert_eq!(line.line_number, number);
            assert_eq!(line.content, content);
            assert_eq!(line.log_level, level, "level of line {number}");
        }
    }

    #[test]
    fn warnings_and_deprecations_are_warnings() {
        assert_eq!(
            classify("[WARNING]: No inventory was parsed", None),
            LogLevel::Warning
        );
        assert_eq!(
            classify("[DEPRECATION WARNING]: foo is deprecated", None),
            LogLevel::Warning
        );
    }

    #[test]
    fn errors_in_every_spelling_are_errors() {
        for line in [
            "ERROR! the playbook: x.yml could not be found",
            "[ERROR]: YAML parsing failed",
            "failed: [web] (item=a) => {}",
            "fatal: [h1]: UNREACHABLE! => {\"unreachable\": true}",
        ] {
            assert_eq!(classify(line, None), LogLevel::Error, "{line}");
        }
    }

    #[test]
    fn lines_of_a_failed_event_are_errors_even_when_plain() {
        assert_eq!(
            classify("Origin: /tmp/p.yml:8:7", Some("runner_on_failed")),
            LogLevel::Error
        );
        assert_eq!(
            classify("Origin: /tmp/p.yml:8:7", Some("runner_on_ok")),
            LogLevel::Info
        );
    }

    #[test]
    fn recap_with_zero_unreachable_is_info() {
        let recap = "web-01 : ok=2 changed=1 unreachable=0 failed=0 skipped=0";
        assert_eq!(classify(recap, Some("playbook_on_stats")), LogLevel::Info);
        assert_eq!(classify(recap, None), LogLevel::Info);
    }

    #[test]
    fn verbose_output_is_debug() {
        assert_eq!(
            classify("<127.0.0.1> ESTABLISH SSH CONNECTION FOR USER: root", None),
            LogLevel::Debug
        );
        assert_eq!(
            classify("Using /etc/ansible/ansible.cfg as config file", None),
            LogLevel::Debug
        );
        assert_eq!(
            classify("anything at all", Some("verbose")),
            LogLevel::Debug
        );
        assert_eq!(
            classify("[WARNING]: careful", Some("verbose")),
            LogLevel::Warning
        );
    }

    #[test]
    fn output_lines_drop_blanks_and_carriage_returns() {
        let lines: Vec<&str> = output_lines("\r\nPLAY [x] ***\r\n\r\n  \nok: [h]").collect();
        assert_eq!(lines, ["PLAY [x] ***", "ok: [h]"]);
    }
}
