//! One gateway per data directory, enforced by the operating system.
//!
//! Two gateways on one data directory would both write `state.json` from their own memory (a
//! revocation or the last used TOTP step could be lost), and the second one's clean-up of a
//! "left-over" nginx would kill the first one's. A check of `control.json` cannot prevent that:
//! the file is written only once the secret, the state and nginx are loaded, so a second gateway
//! started in that window sees nobody. Instead, the first thing a gateway does is take an
//! exclusive lock on `gateway.lock` in the data directory ([`InstanceLock::acquire`]) and hold it
//! for the life of the process. The OS releases it on any exit, a crash or `kill -9` included, so
//! there is no stale lock to clean up. The lock is advisory on Unix (`flock`), a byte-range lock
//! on Windows (`LockFileEx`); only SimpleOTP takes it.
//!
//! Who holds it is written beside it (`gateway.holder`: the program and its pid), not into the
//! locked file, because Windows forbids other processes to read a locked range. It is for the
//! message only: the lock decides.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The locked file (empty) and the file saying who holds the lock, in the data directory.
pub const LOCK_FILE_NAME: &str = "gateway.lock";
pub const HOLDER_FILE_NAME: &str = "gateway.holder";

/// Why the data directory's lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("Another SimpleOTP gateway ({holder}) is already using the data directory {}. Stop it first (quit the SimpleOTP app, or stop `simpleotp serve`), or use another --data-dir.", .data_dir.display())]
    Held { data_dir: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The exclusive lock on a data directory, held until dropped (or the process ends).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    holder_path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock on `data_dir` (made, owner-only, if missing), or says who holds it. `program` names
    /// this process for the other one's message (`simpleotp serve`, `the SimpleOTP app`).
    pub fn acquire(data_dir: &Path, program: &str) -> Result<InstanceLock, LockError> {
        let path = data_dir.join(LOCK_FILE_NAME);
        let io = |source| LockError::Io { path: path.clone(), source };
        crate::fsutil::create_private_dir(data_dir).map_err(io)?;
        let file = crate::fsutil::open_private_read_write(&path).map_err(io)?;
        let holder_path = data_dir.join(HOLDER_FILE_NAME);
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held { data_dir: data_dir.to_path_buf(), holder: read_holder(&holder_path) });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = format!("{program}, pid {}", std::process::id());
        crate::fsutil::write_atomic(&holder_path, holder.as_bytes())
            .map_err(|source| LockError::Io { path: holder_path.clone(), source })?;
        Ok(InstanceLock { _file: file, holder_path })
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // The lock itself goes with the handle; the holder's description goes too (a crash
        // leaves it behind, which is harmless: it is read only while the lock is held).
        let _ = std::fs::remove_file(&self.holder_path);
    }
}

fn read_holder(path: &Path) -> String {
    let mut text = String::new();
    match File::open(path).and_then(|f| f.take(200).read_to_string(&mut text)) {
        Ok(_) if !text.trim().is_empty() => text.trim().chars().filter(|c| !c.is_control()).collect(),
        _ => "a process that is still starting".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs on every OS (Wine included, through scripts/wine-test.sh): a second lock on the same
    /// directory is refused and names the holder, and the lock is free again once dropped.
    /// Two handles in one process stand for two processes: `flock` and `LockFileEx` locks
    /// belong to the open file, not the process (the integration tests use two processes).
    #[test]
    fn a_second_gateway_is_refused_and_told_who_holds_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(dir.path(), "simpleotp serve").unwrap();
        match InstanceLock::acquire(dir.path(), "the SimpleOTP app") {
            Err(LockError::Held { holder, data_dir }) => {
                assert_eq!(holder, format!("simpleotp serve, pid {}", std::process::id()));
                assert_eq!(data_dir, dir.path());
            }
            other => panic!("the second lock was not refused: {other:?}"),
        }
        let message = InstanceLock::acquire(dir.path(), "x").unwrap_err().to_string();
        assert!(message.contains("Another SimpleOTP gateway (simpleotp serve, pid") && message.contains("Stop it first"), "{message}");
        drop(first);
        let again = InstanceLock::acquire(dir.path(), "the SimpleOTP app").expect("free once the first is gone");
        drop(again);
        assert!(!dir.path().join(HOLDER_FILE_NAME).exists());
    }
}
