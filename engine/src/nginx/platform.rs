//! The operating-system specific parts of running nginx, kept together so the rest of the
//! module reads the same everywhere.
//!
//! The hard requirement is *containment*: the nginx we start must never outlive the engine by
//! more than a few seconds, even when the engine is killed with SIGKILL and gets no chance to
//! clean up. Otherwise a stale nginx keeps serving (or blocking) the protected ports.
//!
//! * Linux: `prctl(PR_SET_PDEATHSIG, SIGTERM)` in the child. The kernel delivers the signal
//!   when the *thread* that forked the child exits, so children are forked only from the
//!   dedicated, never-ending launcher thread (see `supervisor.rs`).
//! * Windows: the child is put in a Job Object with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`; the job
//!   handle is held until the process ends, at which point the kernel closes it and kills nginx.
//! * macOS and other Unixes: a tiny `/bin/sh` watchdog polls the engine's pid every second and
//!   sends SIGTERM to nginx once the engine is gone.
//!
//! On Unix nginx also runs in its own process group (its pid), so a Ctrl-C in a terminal reaches
//! only the engine (which then stops nginx in order), and so the workers of a master that was
//! killed outright can be found and killed too: nginx workers do not exit when their master
//! dies, and would keep the ports.

use std::io;
use std::path::{Path, PathBuf};

use super::layout::NginxLayout;
use crate::config::HostName;

/// The file names a bundled nginx can have next to our executable.
pub(crate) const EXE_NAMES: &[&str] = if cfg!(windows) { &["nginx.exe"] } else { &["nginx"] };

/// Where package managers and installers usually put nginx, for when it is not on PATH (a
/// desktop app started from the Dock or Start menu does not see the shell's PATH).
///
/// None on Windows: there is no standard place, and the usual unzip target `C:\nginx` can be
/// created by any user, who would then choose the program we run. There nginx comes bundled next
/// to our executable, from PATH, or from `[nginx] path`.
pub(crate) fn usual_locations() -> Vec<PathBuf> {
    let list: &[&str] = if cfg!(windows) {
        &[]
    } else {
        &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx", "/opt/homebrew/bin/nginx", "/usr/local/bin/nginx"]
    };
    list.iter().map(PathBuf::from).collect()
}

/// Whether `path` is a file we may run; `Err` says why not, in words.
pub(crate) fn check_executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    })?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("not executable (chmod +x it)".into());
        }
    }
    Ok(())
}

/// The accounts nginx workers may run as when we run as root, in order of preference: a
/// dedicated `simpleotp` account when the administrator (or a package) created one, so nothing
/// else shares the workers' user; then `nobody`, nginx's own default, which owns no files; then
/// `www-data`, for systems without `nobody`. Looked up by name at every start.
#[cfg(unix)]
pub(crate) const WORKER_ACCOUNTS: &[&str] = &["simpleotp", "nobody", "www-data"];

/// The unprivileged account nginx workers run as while we (and so the nginx master) run as root.
///
/// The workers parse everything a client sends, so they are what an attacker reaches first;
/// they must never be root. They need almost no file access: the master (root) reads the
/// config, opens the listening sockets and the error log, and hands them over. What they do
/// need is to create request-body temp files (a signed-out browser's upload is buffered before
/// the login redirect), so [`open_temp_dirs_to_workers`] gives them exactly that: their temp
/// directories, and the right to pass through (not list or read) the directories above them.
/// The config (which names the auth server and its secrets) and everything else stay 0600/0700.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerAccount {
    pub user: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
}

/// `Ok(None)` when we are not root (nginx cannot switch users then, and its workers run as we
/// do); the account from [`WORKER_ACCOUNTS`] when we are; an error that says what to do when
/// none of them exists.
#[cfg(unix)]
pub(crate) fn worker_account() -> Result<Option<WorkerAccount>, super::NginxError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    pick_worker_account(WORKER_ACCOUNTS).map(Some)
}

#[cfg(not(unix))]
pub(crate) fn worker_account() -> Result<Option<WorkerAccount>, super::NginxError> {
    Ok(None)
}

/// The first of `names` that exists and is neither root nor in group root.
#[cfg(unix)]
fn pick_worker_account(names: &[&str]) -> Result<WorkerAccount, super::NginxError> {
    names
        .iter()
        .filter_map(|name| lookup_account(name))
        .find(|account| account.uid != 0 && account.gid != 0)
        .ok_or_else(|| super::NginxError::NoWorkerAccount { tried: names.iter().map(|n| n.to_string()).collect() })
}

/// As root, before nginx starts: makes the temp directories in the prefix the worker
/// account's own (0700) and lets it pass through the prefix, the temp parent and the prefix's
/// parent (our data directory) on its way there (0711: search, no listing, so only names it
/// knows, i.e. its temp directories, can be opened; every file there is 0600 anyway). The
/// directories above the data directory are not ours to change: if one of them is closed to
/// the workers (a data directory under `/root`, say), request bodies nginx must buffer cannot
/// be stored and such requests fail, so this says so in a warning. Refuses when no worker
/// account exists ([`super::NginxError::NoWorkerAccount`]).
#[cfg(unix)]
pub(crate) fn open_temp_dirs_to_workers(layout: &NginxLayout) -> Result<(), super::NginxError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(account) = worker_account()? else { return Ok(()) };
    let io_error = |path: &Path, e: io::Error| {
        super::NginxError::io(format!("let nginx workers ({}) use their temp directory {}", account.user, path.display()), e)
    };
    let set_mode =
        |path: &Path, mode: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io_error(path, e));
    for dir in layout.temp_dirs() {
        std::os::unix::fs::lchown(&dir, Some(account.uid), Some(account.gid)).map_err(|e| io_error(&dir, e))?;
        set_mode(&dir, 0o700)?;
    }
    set_mode(&layout.temp_dir(), 0o711)?;
    set_mode(&layout.prefix_dir, 0o711)?;
    if let Some(parent) = layout.prefix_dir.parent() {
        let meta = std::fs::metadata(parent).map_err(|e| io_error(parent, e))?;
        // SAFETY: geteuid has no preconditions.
        if meta.uid() == unsafe { libc::geteuid() } {
            set_mode(parent, (meta.mode() & 0o7777) | 0o001)?;
        }
    }
    let temp = std::fs::canonicalize(layout.temp_dir()).map_err(|e| io_error(&layout.temp_dir(), e))?;
    if let Some(dir) = first_closed_ancestor(&temp, &account) {
        tracing::warn!(
            "nginx workers run as {} (never as root), and {} is closed to them, so they cannot reach their temp directory {}: \
             requests nginx must buffer (uploads over 16 KB from a browser that is not signed in) will fail. \
             Use a data directory they can reach, such as /var/lib/simpleotp (--data-dir), or allow passing through with `chmod o+x {}`",
            account.user,
            dir.display(),
            layout.temp_dir().display(),
            dir.display()
        );
    }
    Ok(())
}

/// The first directory above `path` that `account` may not pass through (no search permission
/// for it as owner, primary group or other; supplementary groups and ACLs are not considered).
#[cfg(unix)]
fn first_closed_ancestor(path: &Path, account: &WorkerAccount) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    path.ancestors().skip(1).find_map(|dir| {
        let meta = std::fs::metadata(dir).ok()?;
        let search_bit = if meta.uid() == account.uid {
            0o100
        } else if meta.gid() == account.gid {
            0o010
        } else {
            0o001
        };
        (meta.mode() & search_bit == 0).then(|| dir.to_path_buf())
    })
}

#[cfg(not(unix))]
pub(crate) fn open_temp_dirs_to_workers(_layout: &NginxLayout) -> Result<(), super::NginxError> {
    Ok(())
}

/// The `user` and `group` for nginx's `user` directive, when we run as root. When no account
/// exists this is `None` and the config gets no `user` line: a root master then falls back to
/// `nobody`, which does not exist either, so `nginx -t` fails; workers never run as root.
/// (Starting refuses earlier, with [`super::NginxError::NoWorkerAccount`].)
pub(crate) fn worker_user() -> Option<(String, String)> {
    worker_account().ok().flatten().map(|account| (account.user, account.group))
}

/// The account `name` with its primary group's name, if both exist.
#[cfg(unix)]
fn lookup_account(name: &str) -> Option<WorkerAccount> {
    let c_name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all pointers are valid for the call; only plain integers are read afterwards.
    let (uid, gid) = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwnam_r(c_name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) != 0 || result.is_null() {
            return None;
        }
        (pwd.pw_uid, pwd.pw_gid)
    };
    Some(WorkerAccount { user: name.to_owned(), group: group_name(gid)?, uid, gid })
}

#[cfg(unix)]
fn group_name(gid: libc::gid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all pointers are valid for the call; the result points into `buf`/`grp`, which
    // outlive its use below.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result: *mut libc::group = std::ptr::null_mut();
        if libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) != 0 || result.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
    }
}

/// Prepares the nginx command so the child is contained (see the module docs). Called on the
/// launcher thread just before spawning.
pub(crate) fn contain(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls; it does not allocate.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // If the parent died between fork and prctl, the signal will never come.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        // Our own console group, so a Ctrl-C in the engine's console is handled by the engine,
        // which then stops nginx in order.
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
}

/// Whatever must live as long as one nginx child to keep it contained; dropping it releases
/// per-child resources (the watchdog on macOS). Nothing on Linux and Windows.
pub(crate) struct Containment {
    #[cfg(all(unix, not(target_os = "linux")))]
    watchdog: Option<std::process::Child>,
}

impl Drop for Containment {
    fn drop(&mut self) {
        #[cfg(all(unix, not(target_os = "linux")))]
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Finishes containment once the child exists (Job Object on Windows, watchdog on macOS).
pub(crate) fn after_spawn(child: &tokio::process::Child) -> io::Result<Containment> {
    #[cfg(target_os = "linux")]
    {
        let _ = child;
        Ok(Containment {})
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        use std::os::unix::process::CommandExt;
        let Some(pid) = child.id() else { return Ok(Containment { watchdog: None }) };
        let watchdog = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill -TERM \"$2\" 2>/dev/null")
            .arg("simpleotp-nginx-watchdog")
            .arg(std::process::id().to_string())
            .arg(pid.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Not in our process group: a Ctrl-C that kills the engine must not kill the watchdog.
            .process_group(0)
            .spawn()?;
        Ok(Containment { watchdog: Some(watchdog) })
    }
    #[cfg(windows)]
    {
        windows_job::assign(child)?;
        Ok(Containment {})
    }
}

#[cfg(windows)]
mod windows_job {
    use std::io;
    use std::sync::OnceLock;

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation, SetInformationJobObject,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };

    /// One job for all our nginx processes, created once and never closed: the kernel closes it
    /// when the engine exits for any reason, which kills everything in it (workers included,
    /// since children of a job member join the job).
    static JOB: OnceLock<Result<usize, i32>> = OnceLock::new();

    fn job() -> io::Result<HANDLE> {
        let job = JOB.get_or_init(|| {
            // SAFETY: plain Win32 calls with valid (null or owned) arguments.
            unsafe {
                let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
                let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let ok = SetInformationJobObject(
                    job,
                    JobObjectExtendedLimitInformation,
                    &info as *const _ as *const core::ffi::c_void,
                    std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                );
                if ok == 0 {
                    return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
                Ok(job as usize)
            }
        });
        match job {
            Ok(h) => Ok(*h as HANDLE),
            Err(code) => Err(io::Error::from_raw_os_error(*code)),
        }
    }

    pub(super) fn assign(child: &tokio::process::Child) -> io::Result<()> {
        let job = job()?;
        let Some(process) = child.raw_handle() else { return Ok(()) };
        // SAFETY: both handles are valid for the duration of the call.
        if unsafe { AssignProcessToJobObject(job, process as HANDLE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// What we ask of a running nginx master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// Graceful shutdown: finish current requests, then exit (SIGQUIT / `-s quit`).
    Quit,
    /// Re-read the configuration, replacing workers without dropping connections
    /// (SIGHUP / `-s reload`).
    Reload,
    /// Immediate termination (SIGKILL; on Windows `-s stop`).
    Kill,
}

/// Sends `request` to the nginx master `pid` that runs with `layout`.
pub(crate) async fn send(binary: &Path, layout: &NginxLayout, pid: u32, request: Request) -> io::Result<()> {
    #[cfg(unix)]
    {
        let _ = (binary, layout);
        let sig = match request {
            Request::Quit => libc::SIGQUIT,
            Request::Reload => libc::SIGHUP,
            Request::Kill => libc::SIGKILL,
        };
        signal(pid, sig)
    }
    #[cfg(not(unix))]
    {
        // nginx for Windows takes signals only through `nginx -s`, which finds the master
        // through the pid file in the prefix.
        let _ = pid;
        let name = match request {
            Request::Quit => "quit",
            Request::Reload => "reload",
            Request::Kill => "stop",
        };
        let out = tokio::process::Command::new(binary)
            .arg("-s")
            .arg(name)
            .args(super::layout::prefix_args(layout, &layout.conf_path()))
            .output()
            .await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }
}

#[cfg(unix)]
fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pid <= 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: kill has no memory-safety preconditions; pid > 0 targets exactly one process.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a process with this pid exists (and, on Linux, is not a zombie waiting to be
/// reaped). `None` where the platform gives us no cheap way to tell (Windows).
pub(crate) fn process_alive(pid: u32) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        Some(match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat_fields(&stat).is_some_and(|(state, _)| state != 'Z' && state != 'X'),
            Err(_) => false,
        })
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        Some(match signal(pid, 0) {
            Ok(()) => true,
            Err(e) => e.raw_os_error() == Some(libc::EPERM),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        None
    }
}

/// `(state, process group)` from the text of `/proc/PID/stat`. The command name in parentheses
/// may itself contain spaces and parentheses, so fields are counted from the last `)`.
#[cfg(target_os = "linux")]
fn stat_fields(stat: &str) -> Option<(char, i64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// The command line of a running process, to recognise an nginx of ours before signalling a pid
/// read from a file (the pid may have been reused by an unrelated program). `None` when the
/// platform gives us no way to ask.
pub(crate) fn process_cmdline(pid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        // nginx rewrites its argv to "nginx: master process <binary> -p <prefix> ...", which
        // still contains the prefix.
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        Some(String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string())
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let out = std::process::Command::new("ps").args(["-o", "command=", "-p", &pid.to_string()]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        None
    }
}

/// Kills what is left of the nginx process group `pgid` (the pid of a master we started, which
/// made itself a group leader): workers whose master died without telling them. Returns how
/// many processes were signalled where the platform can tell.
pub(crate) fn kill_group(pgid: u32) -> usize {
    #[cfg(target_os = "linux")]
    {
        // Scan instead of killpg(): if the group is already empty, its id could in theory have
        // been reused by an unrelated group, and only processes that really are nginx and in the
        // group get the signal.
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        let mut killed = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            if stat_fields(&stat).map(|(_, g)| g) != Some(pgid as i64) {
                continue;
            }
            if process_cmdline(pid).is_some_and(|c| c.starts_with("nginx")) && signal(pid, libc::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        killed
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let Ok(pgid) = libc::pid_t::try_from(pgid) else { return 0 };
        // SAFETY: a negative pid addresses the process group; no memory is involved.
        usize::from(pgid > 1 && unsafe { libc::kill(-pgid, libc::SIGKILL) } == 0)
    }
    #[cfg(not(unix))]
    {
        // The Job Object takes care of stray workers on Windows.
        let _ = pgid;
        0
    }
}

/// Whether `pid` leads its own process group (i.e. it is a master started by us).
pub(crate) fn is_group_leader(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else { return false };
        // SAFETY: getpgid has no memory-safety preconditions.
        unsafe { libc::getpgid(p) == p }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// This machine's own names, which every protected app answers for: its host name and, for
/// the local network's mDNS, `<hostname>.local`. Names that are not valid DNS names are left out.
pub(crate) fn machine_names() -> Vec<HostName> {
    crate::config::MachineNames::this_machine().names().to_vec()
}

/// The system's bundle of trusted root certificates, for checking `https` upstreams.
pub(crate) fn system_ca_bundle() -> Option<PathBuf> {
    let candidates: &[&str] = if cfg!(windows) {
        // Windows keeps its roots in the registry, which nginx cannot read; a bundled nginx
        // can be given a PEM file here.
        &[]
    } else {
        &[
            "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch
            "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
            "/etc/ssl/ca-bundle.pem",             // openSUSE
            "/etc/ssl/cert.pem",                  // macOS, Alpine, BSDs
        ]
    };
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn parses_stat_with_odd_command_names() {
        assert_eq!(stat_fields("42 (a) b) (c) S 1 42 42 0"), Some(('S', 42)));
        assert_eq!(stat_fields("garbage"), None);
    }

    #[test]
    fn we_are_alive_and_a_missing_pid_is_not() {
        if cfg!(unix) {
            assert_eq!(process_alive(std::process::id()), Some(true));
            assert_eq!(process_alive(u32::MAX / 2), Some(false));
        }
    }

    #[cfg(unix)]
    #[test]
    fn worker_account_is_never_root_and_missing_ones_are_named() {
        let err = pick_worker_account(&["simpleotp-no-such-account", "root"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("simpleotp-no-such-account, root"), "{msg}");
        assert!(msg.contains("useradd") && msg.contains("normal user"), "{msg}");
        // Every Debian-like system has `nobody` (uid 65534), and it is chosen over a later name.
        let nobody = pick_worker_account(&["simpleotp-no-such-account", "nobody", "root"]).unwrap();
        assert_eq!(nobody.user, "nobody");
        assert_ne!(nobody.uid, 0);
        assert!(!nobody.group.is_empty());
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        match worker_account().unwrap() {
            Some(account) => assert!(root && account.uid != 0 && WORKER_ACCOUNTS.contains(&account.user.as_str()), "{account:?}"),
            None => assert!(!root),
        }
    }

    #[cfg(unix)]
    #[test]
    fn closed_ancestors_are_found_by_the_workers_view() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        let set = |p: &Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        set(dir.path(), 0o755);
        let stranger = WorkerAccount { user: "x".into(), group: "x".into(), uid: 4_000_000, gid: 4_000_000 };
        assert_eq!(first_closed_ancestor(&deep, &stranger), None);
        set(&dir.path().join("a"), 0o700);
        assert_eq!(first_closed_ancestor(&deep, &stranger), Some(dir.path().join("a")));
        set(&dir.path().join("a"), 0o711);
        assert_eq!(first_closed_ancestor(&deep, &stranger), None);
        set(&dir.path().join("a/b"), 0o750);
        assert_eq!(first_closed_ancestor(&deep, &stranger), Some(dir.path().join("a/b")));
        // The group's bit counts for a member of the directory's group.
        // SAFETY: getegid has no preconditions.
        let in_our_group = WorkerAccount { gid: unsafe { libc::getegid() }, ..stranger.clone() };
        assert_eq!(first_closed_ancestor(&deep, &in_our_group), None);
    }

    #[test]
    fn machine_names_include_the_mdns_name() {
        let names = machine_names();
        if let Some(host) = crate::config::host_name().and_then(|h| h.parse::<HostName>().ok()) {
            assert!(names.contains(&host), "{names:?}");
            let short = host.as_str().split('.').next().unwrap();
            assert!(names.iter().any(|n| n.as_str() == format!("{short}.local")), "{names:?}");
        }
    }

    #[test]
    fn checks_executables() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_executable(&dir.path().join("nope")), Err("no such file".into()));
        assert_eq!(check_executable(dir.path()), Err("not a file".into()));
        #[cfg(unix)]
        {
            let f = dir.path().join("f");
            std::fs::write(&f, "").unwrap();
            assert!(check_executable(&f).unwrap_err().contains("not executable"));
        }
    }
}
