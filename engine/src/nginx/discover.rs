//! Finding the nginx binary.
//!
//! The order reflects intent: an explicitly configured path always wins (and is an error if it
//! is wrong; silently running some other nginx would be surprising), then a copy bundled next to
//! our own executable (the desktop app ships one as a sidecar), then `PATH`, then the places
//! package managers put it, because a GUI app often does not inherit the shell's `PATH`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::platform;
use super::NginxError;

/// Finds the nginx binary to run. See the module docs for the search order.
pub fn discover(configured: Option<&Path>) -> Result<PathBuf, NginxError> {
    let exe_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf));
    let path_var = std::env::var_os("PATH");
    discover_in(configured, exe_dir.as_deref(), path_var.as_deref(), &platform::usual_locations())
}

/// [`discover`] with every input explicit, so tests do not depend on the machine.
pub(crate) fn discover_in(
    configured: Option<&Path>,
    exe_dir: Option<&Path>,
    path_var: Option<&OsStr>,
    usual: &[PathBuf],
) -> Result<PathBuf, NginxError> {
    if let Some(path) = configured {
        return match platform::check_executable(path) {
            Ok(()) => Ok(path.to_path_buf()),
            Err(reason) => Err(NginxError::NotExecutable { path: path.to_path_buf(), reason }),
        };
    }
    let mut candidates = Vec::new();
    if let Some(dir) = exe_dir {
        candidates.extend(platform::EXE_NAMES.iter().map(|n| dir.join(n)));
    }
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(path_var).filter(|d| !d.as_os_str().is_empty()) {
            candidates.extend(platform::EXE_NAMES.iter().map(|n| dir.join(n)));
        }
    }
    candidates.extend(usual.iter().cloned());

    let mut tried: Vec<PathBuf> = Vec::new();
    for candidate in candidates {
        if tried.contains(&candidate) {
            continue;
        }
        if platform::check_executable(&candidate).is_ok() {
            tracing::debug!(path = %candidate.display(), "found nginx");
            return Ok(candidate);
        }
        tried.push(candidate);
    }
    Err(NginxError::NotFound { tried })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn make_exe(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn configured_path_that_is_missing_is_an_error_naming_it() {
        let err = discover_in(Some(Path::new("/nowhere/nginx")), None, None, &[]).unwrap_err();
        assert!(matches!(err, NginxError::NotExecutable { .. }));
        let msg = err.to_string();
        assert!(msg.contains("/nowhere/nginx"), "{msg}");
        assert!(msg.contains("no such file"), "{msg}");
        assert!(msg.contains("[nginx] path"), "{msg}");
    }

    #[test]
    fn not_found_lists_every_place_tried() {
        let dir = tempfile::tempdir().unwrap();
        let exe_dir = dir.path().join("bin");
        let path_var = std::env::join_paths([dir.path().join("p1"), dir.path().join("p2")]).unwrap();
        let usual = vec![dir.path().join("usual/nginx")];
        let err = discover_in(None, Some(&exe_dir), Some(&path_var), &usual).unwrap_err();
        let NginxError::NotFound { tried } = &err else { panic!("{err}") };
        let name = platform::EXE_NAMES[0];
        assert_eq!(tried, &vec![exe_dir.join(name), dir.path().join("p1").join(name), dir.path().join("p2").join(name), usual[0].clone()]);
        let msg = err.to_string();
        for t in tried {
            assert!(msg.contains(&t.display().to_string()), "{msg}");
        }
        assert!(msg.contains("apt-get install nginx") && msg.contains("[nginx] path"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn search_order_is_bundled_then_path_then_usual() {
        let dir = tempfile::tempdir().unwrap();
        let (exe_dir, p, usual) = (dir.path().join("bin"), dir.path().join("p"), dir.path().join("usual"));
        for d in [&exe_dir, &p, &usual] {
            std::fs::create_dir(d).unwrap();
        }
        let path_var = std::env::join_paths([&p]).unwrap();
        let usual_list = vec![usual.join("nginx")];
        let find = || discover_in(None, Some(&exe_dir), Some(&path_var), &usual_list).unwrap();

        make_exe(&usual.join("nginx"));
        assert_eq!(find(), usual.join("nginx"));
        make_exe(&p.join("nginx"));
        assert_eq!(find(), p.join("nginx"));
        make_exe(&exe_dir.join("nginx"));
        assert_eq!(find(), exe_dir.join("nginx"));
        // A configured path wins over everything.
        make_exe(&dir.path().join("mine"));
        assert_eq!(discover_in(Some(&dir.path().join("mine")), Some(&exe_dir), None, &[]).unwrap(), dir.path().join("mine"));
        // A non-executable file is skipped.
        std::fs::write(exe_dir.join("nginx"), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(exe_dir.join("nginx"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(find(), p.join("nginx"));
    }

    #[test]
    fn finds_the_system_nginx_on_this_machine() {
        // Not an assertion about every machine: only checks that a found binary is executable.
        if let Ok(path) = discover(None) {
            assert!(platform::check_executable(&path).is_ok());
        }
    }
}
