//! Playbook text is checked on upload: it must parse as YAML and be a list of plays, and
//! a parse error names its line and column, so nobody finds a typo by running a job.

use crate::error::Error;
use serde_yaml::Value;

pub fn check(content: &str) -> Result<(), Error> {
    let document: Value = serde_yaml::from_str(content).map_err(|e| {
        let place = e
            .location()
            .map(|at| format!(" at line {}, column {}", at.line(), at.column()))
            .unwrap_or_default();
        Error::Invalid(format!("playbook YAML is invalid{place}: {e}"))
    })?;
    let Value::Sequence(plays) = document else {
        return Err(Error::Invalid(
            "a playbook must be a YAML list of plays, e.g. '- hosts: all'".into(),
        ));
    };
    if plays.is_empty() {
        return Err(Error::Invalid("the playbook has no plays".into()));
    }
    for (index, play) in plays.iter().enumerate() {
        let Value::Mapping(play) = play else {
            return Err(Error::Invalid(format!(
                "play {} is not a mapping; each play needs 'hosts:'",
                index + 1
            )));
        };
        let names_hosts = [
            "hosts",
            "import_playbook",
            "ansible.builtin.import_playbook",
        ]
        .iter()
        .any(|key| play.contains_key(*key));
        if !names_hosts {
            return Err(Error::Invalid(format!(
                "play {} has no 'hosts' (or 'import_playbook')",
                index + 1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_plays_passes() {
        assert!(check("- hosts: all\n  tasks:\n    - ping:\n").is_ok());
        assert!(check("- import_playbook: other.yml\n").is_ok());
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let bad = "- hosts: all\n  tasks:\n    - name: x\n     bad: [\n";
        let message = check(bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("at line 4, column"), "{message}");
    }

    #[test]
    fn shapes_that_are_not_playbooks_are_refused() {
        for bad in ["just text", "hosts: all", "[]", "- 42", "- tasks: []"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
