//! Mapping an ansible-runner result to the spec's exit codes.
//!
//! ansible-playbook itself exits 4 both for a parse error and for unreachable hosts, and
//! 2 for failed hosts, so the code alone is ambiguous; the agent also reports what the
//! event stream showed (did a play start, which hosts failed or were unreachable).

/// Spec exit codes.
pub const SUCCESS: i32 = 0;
pub const TASK_FAILURE: i32 = 1;
pub const SYNTAX_ERROR: i32 = 2;
pub const CONNECTION_ERROR: i32 = 3;
pub const TIMEOUT: i32 = 4;
pub const CANCELLED: i32 = 99;

/// Why the run ended, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// ansible-runner exited by itself with this return code.
    Exited(i32),
    /// The agent stopped the run because the job's timeout passed.
    TimedOut,
    /// The agent stopped the run because a user cancelled the job.
    Cancelled,
    /// ansible-runner could not be started or was killed by a signal.
    Crashed,
}

/// What the agent learned from one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    pub termination: Termination,
    /// A `playbook_on_play_start` event was seen: the playbook parsed and ran.
    pub play_started: bool,
    /// Hosts with failed tasks, from `playbook_on_stats`.
    pub hosts_failed: u32,
    /// Hosts that could not be reached, from `playbook_on_stats`.
    pub hosts_unreachable: u32,
}

/// The spec's exit code for a run. When hosts both failed and were unreachable, the task
/// failure wins (1): the playbook did reach something and broke there.
pub fn exit_code(outcome: &RunOutcome) -> i32 {
    match outcome.termination {
        Termination::Cancelled => CANCELLED,
        Termination::TimedOut => TIMEOUT,
        Termination::Exited(0) => SUCCESS,
        Termination::Exited(_) | Termination::Crashed => {
            if !outcome.play_started && outcome.termination != Termination::Crashed {
                SYNTAX_ERROR
            } else if outcome.hosts_unreachable > 0 && outcome.hosts_failed == 0 {
                CONNECTION_ERROR
            } else {
                TASK_FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(termination: Termination, play_started: bool, failed: u32, dark: u32) -> i32 {
        exit_code(&RunOutcome {
            termination,
            play_started,
            hosts_failed: failed,
            hosts_unreachable: dark,
        })
    }

    #[test]
    fn clean_run_is_zero() {
        assert_eq!(outcome(Termination::Exited(0), true, 0, 0), 0);
    }

    #[test]
    fn failed_task_is_one() {
        // ansible-playbook exits 2 when a host failed.
        assert_eq!(outcome(Termination::Exited(2), true, 1, 0), 1);
    }

    #[test]
    fn parse_error_before_any_play_is_two() {
        // ansible-playbook exits 4 for a parser error, and nothing ever started.
        assert_eq!(outcome(Termination::Exited(4), false, 0, 0), 2);
        assert_eq!(outcome(Termination::Exited(1), false, 0, 0), 2);
    }

    #[test]
    fn unreachable_host_is_three() {
        // ansible-playbook also exits 4 here; the stats tell the difference.
        assert_eq!(outcome(Termination::Exited(4), true, 0, 1), 3);
    }

    #[test]
    fn failure_beside_unreachable_is_one() {
        assert_eq!(outcome(Termination::Exited(2), true, 1, 1), 1);
    }

    #[test]
    fn timeout_is_four() {
        assert_eq!(outcome(Termination::TimedOut, true, 0, 0), 4);
    }

    #[test]
    fn cancel_is_ninety_nine() {
        assert_eq!(outcome(Termination::Cancelled, false, 0, 0), 99);
    }

    #[test]
    fn crash_is_a_failure_not_a_syntax_error() {
        assert_eq!(outcome(Termination::Crashed, false, 0, 0), 1);
    }
}
