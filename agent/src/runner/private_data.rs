//! The ansible-runner private data directory of one job: the playbook, an inventory
//! built from the server record, extra vars and the environment.

use crate::error::Error;
use drover_shared::Connection;
use drover_shared::protocol::{JobDispatch, Target};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const PLAYBOOK_FILE: &str = "playbook.yml";

/// A key path from a server record, resolved inside `key_dir`: it must stay inside it
/// (no `..`, no symlink out) and be readable by its owner only, as ssh demands.
pub fn resolve_key(key_dir: &Path, relative: &str) -> Result<PathBuf, Error> {
    let bad = |why: &str| Error::Key {
        path: relative.to_owned(),
        why: why.to_owned(),
    };
    if Path::new(relative).is_absolute() || relative.split('/').any(|part| part == "..") {
        return Err(bad("must be relative to --key-dir, without '..'"));
    }
    let root = key_dir
        .canonicalize()
        .map_err(|e| bad(&format!("--key-dir {} is unusable: {e}", key_dir.display())))?;
    let key = root
        .join(relative)
        .canonicalize()
        .map_err(|e| bad(&format!("not found under {}: {e}", root.display())))?;
    if !key.starts_with(&root) {
        return Err(bad("resolves outside --key-dir (symlink)"));
    }
    let mode = std::fs::metadata(&key)
        .map_err(|e| bad(&e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(bad(&format!(
            "has mode {:o}; run chmod 600 on it",
            mode & 0o777
        )));
    }
    Ok(key)
}

/// The inventory of one host, in ansible-runner's JSON inventory form.
pub fn inventory(target: &Target, key_file: Option<&Path>, check_host_keys: bool) -> Value {
    let mut vars = serde_json::Map::new();
    match target.connection {
        Connection::Local => {
            vars.insert("ansible_connection".into(), json!("local"));
            // Interpreter discovery picks broken shims on some hosts; use Ansible's own
            // Python as AWX does, unless the server record says otherwise.
            let python = target
                .python_interpreter
                .clone()
                .unwrap_or_else(|| "{{ ansible_playbook_python }}".to_owned());
            vars.insert("ansible_python_interpreter".into(), json!(python));
        }
        Connection::Ssh => {
            vars.insert("ansible_connection".into(), json!("ssh"));
            vars.insert("ansible_host".into(), json!(target.ip_address));
            vars.insert("ansible_port".into(), json!(target.ssh_port));
            vars.insert("ansible_user".into(), json!(target.ssh_user));
            if let Some(key) = key_file {
                vars.insert(
                    "ansible_ssh_private_key_file".into(),
                    json!(key.display().to_string()),
                );
            }
            if !check_host_keys {
                vars.insert(
                    "ansible_ssh_common_args".into(),
                    json!("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"),
                );
            }
            if let Some(python) = &target.python_interpreter {
                vars.insert("ansible_python_interpreter".into(), json!(python));
            }
        }
    }
    json!({ "all": { "hosts": { target.hostname.clone(): Value::Object(vars) } } })
}

/// Environment of the run: plain output (no colour codes in stored lines).
fn envvars(check_host_keys: bool) -> Value {
    json!({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_HOST_KEY_CHECKING": if check_host_keys { "True" } else { "False" },
    })
}

/// Writes the private data directory of `dispatch` at `dir`.
pub fn write(
    dir: &Path,
    dispatch: &JobDispatch,
    inventory: &Value,
    check_host_keys: bool,
) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    for sub in ["project", "inventory", "env"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
    }
    let files = [
        (
            dir.join("project").join(PLAYBOOK_FILE),
            dispatch.playbook_content.clone(),
        ),
        (
            dir.join("inventory").join("hosts.json"),
            inventory.to_string(),
        ),
        (
            dir.join("env").join("extravars"),
            dispatch.extra_vars.to_string(),
        ),
        (
            dir.join("env").join("envvars"),
            envvars(check_host_keys).to_string(),
        ),
    ];
    for (path, content) in files {
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn target(connection: Connection) -> Target {
        Target {
            hostname: "web-01".into(),
            ip_address: "10.0.0.5".into(),
            ssh_port: 2222,
            ssh_user: "deploy".into(),
            ssh_key_path: Some("web/id".into()),
            connection,
            python_interpreter: None,
        }
    }

    #[test]
    fn local_inventory_uses_ansibles_own_python() {
        let inv = inventory(&target(Connection::Local), None, false);
        let host = &inv["all"]["hosts"]["web-01"];
        assert_eq!(host["ansible_connection"], "local");
        assert_eq!(
            host["ansible_python_interpreter"],
            "{{ ansible_playbook_python }}"
        );
    }

    #[test]
    fn ssh_inventory_carries_address_port_user_and_key() {
        let inv = inventory(
            &target(Connection::Ssh),
            Some(Path::new("/keys/web/id")),
            false,
        );
        let host = &inv["all"]["hosts"]["web-01"];
        assert_eq!(host["ansible_host"], "10.0.0.5");
        assert_eq!(host["ansible_port"], 2222);
        assert_eq!(host["ansible_user"], "deploy");
        assert_eq!(host["ansible_ssh_private_key_file"], "/keys/web/id");
        assert!(host.get("ansible_python_interpreter").is_none());
    }

    #[test]
    fn keys_resolve_only_inside_the_key_dir() {
        let keys = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let write_key = |path: &Path, mode: u32| {
            std::fs::write(path, "key").expect("write");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write_key(&keys.path().join("good"), 0o600);
        write_key(&keys.path().join("open"), 0o644);
        write_key(&outside.path().join("secret"), 0o600);
        symlink(outside.path().join("secret"), keys.path().join("link")).expect("symlink");

        assert!(resolve_key(keys.path(), "good").is_ok());
        for bad in ["open", "link", "../x", "/etc/passwd", "missing"] {
            assert!(
                resolve_key(keys.path(), bad).is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn writes_the_runner_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dispatch = JobDispatch {
            job_uuid: uuid::Uuid::new_v4(),
            job_id: 1,
            playbook_name: "p".into(),
            playbook_content: "- hosts: all\n".into(),
            target: target(Connection::Local),
            extra_vars: json!({"port": 8080}),
            timeout_secs: None,
            verbosity: 0,
        };
        let inv = inventory(&dispatch.target, None, false);
        write(dir.path(), &dispatch, &inv, false).expect("writes");
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).expect("exists");
        assert_eq!(read("project/playbook.yml"), "- hosts: all\n");
        assert_eq!(read("env/extravars"), r#"{"port":8080}"#);
        assert!(read("inventory/hosts.json").contains("web-01"));
    }
}
