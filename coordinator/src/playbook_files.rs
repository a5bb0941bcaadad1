//! Playbooks by `file_path`: YAML files under the coordinator's `--playbook-dir`, read
//! when the playbook is registered and again on `POST /playbooks/{id}/sync` (AWX's
//! project update). What a job runs is the content stored at the last read, so a job
//! never runs a file half-edited on disk, and the job page shows exactly what ran.

use crate::error::Error;
use crate::validate;
use std::io::ErrorKind;
use std::path::Path;

/// Reads `relative` from under `dir`. Blocking: call it from the blocking pool.
pub fn read(dir: Option<&Path>, relative: &str) -> Result<String, Error> {
    let Some(dir) = dir else {
        return Err(Error::Invalid(
            "file_path needs the coordinator to run with --playbook-dir; send the playbook as content instead".into(),
        ));
    };
    validate::relative_path("file_path", relative, "the playbook directory")?;
    let base = dir.canonicalize().map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let full = match base.join(relative).canonicalize() {
        Ok(full) => full,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Err(Error::Invalid(format!(
                "file_path '{relative}' does not exist in the playbook directory"
            )));
        }
        Err(e) => {
            return Err(Error::Invalid(format!(
                "file_path '{relative}' cannot be read: {e}"
            )));
        }
    };
    if !full.starts_with(&base) {
        return Err(Error::Invalid(format!(
            "file_path '{relative}' leads outside the playbook directory (through a symlink)"
        )));
    }
    let metadata = std::fs::metadata(&full)
        .map_err(|e| Error::Invalid(format!("file_path '{relative}' cannot be read: {e}")))?;
    if !metadata.is_file() {
        return Err(Error::Invalid(format!(
            "file_path '{relative}' is not a regular file"
        )));
    }
    if metadata.len() > validate::MAX_PLAYBOOK_BYTES as u64 {
        return Err(Error::Invalid(format!(
            "file_path '{relative}' is {} bytes; the limit is {}",
            metadata.len(),
            validate::MAX_PLAYBOOK_BYTES
        )));
    }
    let bytes = std::fs::read(&full)
        .map_err(|e| Error::Invalid(format!("file_path '{relative}' cannot be read: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Invalid(format!("file_path '{relative}' is not UTF-8 text")))
}

/// [`read`] on the blocking pool.
pub async fn read_async(
    dir: Option<std::sync::Arc<std::path::PathBuf>>,
    relative: String,
) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || read(dir.as_deref().map(|d| d.as_path()), &relative))
        .await
        .map_err(|e| Error::Internal(format!("reading a playbook file failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(result: Result<String, Error>) -> String {
        match result {
            Err(Error::Invalid(message)) => message,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn reads_files_inside_the_directory_and_nothing_else() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("playbooks");
        std::fs::create_dir_all(dir.join("web")).expect("dirs");
        std::fs::write(dir.join("web/site.yml"), "- hosts: all\n").expect("writes");
        std::fs::write(root.path().join("secret.yml"), "outside").expect("writes");
        std::os::unix::fs::symlink(root.path().join("secret.yml"), dir.join("link.yml"))
            .expect("symlink");
        std::fs::write(dir.join("binary.yml"), [0xff, 0xfe]).expect("writes");

        assert_eq!(
            read(Some(&dir), "web/site.yml").expect("reads"),
            "- hosts: all\n"
        );
        assert_eq!(
            read(Some(&dir), "./web/site.yml").expect("reads"),
            "- hosts: all\n"
        );
        assert!(invalid(read(None, "web/site.yml")).contains("--playbook-dir"));
        assert!(invalid(read(Some(&dir), "../secret.yml")).contains("relative path"));
        assert!(invalid(read(Some(&dir), "/etc/passwd")).contains("relative path"));
        assert!(invalid(read(Some(&dir), "link.yml")).contains("outside"));
        assert!(invalid(read(Some(&dir), "missing.yml")).contains("does not exist"));
        assert!(invalid(read(Some(&dir), "web")).contains("not a regular file"));
        assert!(invalid(read(Some(&dir), "binary.yml")).contains("UTF-8"));
        assert!(invalid(read(Some(&dir), "a\0b")).contains("relative path"));
    }
}
