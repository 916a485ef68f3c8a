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
//! * Windows: each nginx gets a Job Object with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`. nginx is
//!   created suspended and runs only once it is in the job, so every worker it starts is in the
//!   job too (a worker started before the assignment would escape). The handle is held for as
//!   long as that nginx runs and closed when the engine exits for any reason, which kills the
//!   whole tree; terminating the job also ends workers whose master was killed.
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
        // Runs only after `after_spawn` has put it in its job.
        const CREATE_SUSPENDED: u32 = 0x0000_0004;
        crate::child::with_flags(cmd, CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED);
    }
}

/// Whatever must live as long as one nginx child to keep it contained; dropping it releases
/// per-child resources (the watchdog on macOS, the Job Object on Windows, whose closing kills
/// what is left in it). Nothing on Linux.
pub(crate) struct Containment {
    #[cfg(all(unix, not(target_os = "linux")))]
    watchdog: Option<std::process::Child>,
    #[cfg(windows)]
    job: windows_job::Job,
}

impl Containment {
    /// Whether the master has started a worker. On Windows the worker (not the master) listens,
    /// and the master closes its own sockets just before it starts one (see `process::launch`);
    /// elsewhere the master's sockets are the workers', so it does not matter.
    pub(crate) fn worker_started(&self, master: u32) -> bool {
        #[cfg(windows)]
        {
            windows_job::has_child_of_its_kind(master)
        }
        #[cfg(not(windows))]
        {
            let _ = master;
            true
        }
    }

    /// Kills what is left of the nginx whose master was `pid` (its workers, which do not exit
    /// when the master is killed outright, and would keep the ports). Returns how many
    /// processes were ended where the platform can tell.
    pub(crate) fn kill_leftovers(&self, pid: u32) -> usize {
        #[cfg(unix)]
        {
            kill_group(pid)
        }
        #[cfg(windows)]
        {
            let _ = pid;
            self.job.terminate()
        }
    }
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
        let watchdog = crate::child::command("/bin/sh")
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
        let job = windows_job::Job::new()?;
        job.assign(child)?;
        if let Some(pid) = child.id() {
            windows_job::resume(pid)?;
        }
        Ok(Containment { job })
    }
}

#[cfg(windows)]
mod windows_job {
    use std::io;

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, Thread32First, Thread32Next, PROCESSENTRY32W, TH32CS_SNAPPROCESS,
        TH32CS_SNAPTHREAD, THREADENTRY32,
    };
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectBasicAccountingInformation, JobObjectExtendedLimitInformation,
        QueryInformationJobObject, SetInformationJobObject, TerminateJobObject, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };
    use windows_sys::Win32::System::Threading::{OpenThread, ResumeThread, THREAD_SUSPEND_RESUME};

    /// One nginx's Job Object. Closing its handle (when the engine drops it, or when the engine
    /// exits for any reason and the kernel closes it) kills everything in it: the master and
    /// every worker, since children of a job member are created in the job.
    pub(crate) struct Job(HANDLE);

    // SAFETY: a job handle may be used from any thread.
    unsafe impl Send for Job {}
    unsafe impl Sync for Job {}

    impl Job {
        pub(crate) fn new() -> io::Result<Job> {
            // SAFETY: plain Win32 calls with valid (null or owned) arguments.
            unsafe {
                let handle = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if handle.is_null() {
                    return Err(io::Error::last_os_error());
                }
                let job = Job(handle);
                let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let ok = SetInformationJobObject(
                    job.0,
                    JobObjectExtendedLimitInformation,
                    &info as *const _ as *const core::ffi::c_void,
                    size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                );
                if ok == 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(job)
            }
        }

        pub(crate) fn assign(&self, child: &tokio::process::Child) -> io::Result<()> {
            let Some(process) = child.raw_handle() else { return Ok(()) };
            // SAFETY: both handles are valid for the duration of the call.
            if unsafe { AssignProcessToJobObject(self.0, process as HANDLE) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// How many processes are in the job now.
        pub(crate) fn active_processes(&self) -> u32 {
            // SAFETY: the buffer is a zeroed struct of the size given.
            unsafe {
                let mut info: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = std::mem::zeroed();
                let ok = QueryInformationJobObject(
                    self.0,
                    JobObjectBasicAccountingInformation,
                    &mut info as *mut _ as *mut core::ffi::c_void,
                    size_of::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>() as u32,
                    std::ptr::null_mut(),
                );
                if ok == 0 {
                    0
                } else {
                    info.ActiveProcesses
                }
            }
        }

        /// Ends every process in the job; returns how many there were.
        pub(crate) fn terminate(&self) -> usize {
            let active = self.active_processes();
            // SAFETY: a valid job handle.
            if active > 0 && unsafe { TerminateJobObject(self.0, 1) } == 0 {
                return 0;
            }
            active as usize
        }
    }

    impl Drop for Job {
        fn drop(&mut self) {
            // SAFETY: we own the handle; closing it kills what is left in the job.
            unsafe { CloseHandle(self.0) };
        }
    }

    /// Whether `pid` has started a process of its own program (an nginx master its worker). The
    /// job may hold other helpers (a console host), so the count alone does not say.
    pub(crate) fn has_child_of_its_kind(pid: u32) -> bool {
        // SAFETY: the snapshot handle is checked and closed; the entry is initialised with its size.
        let processes: Vec<(u32, u32, Vec<u16>)> = unsafe {
            let snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
            if snapshot == INVALID_HANDLE_VALUE {
                return false;
            }
            let mut list = Vec::new();
            let mut entry: PROCESSENTRY32W = std::mem::zeroed();
            entry.dwSize = size_of::<PROCESSENTRY32W>() as u32;
            let mut more = Process32FirstW(snapshot, &mut entry) != 0;
            while more {
                let name = entry.szExeFile.iter().copied().take_while(|&c| c != 0).collect();
                list.push((entry.th32ProcessID, entry.th32ParentProcessID, name));
                more = Process32NextW(snapshot, &mut entry) != 0;
            }
            CloseHandle(snapshot);
            list
        };
        let Some((_, _, name)) = processes.iter().find(|(id, _, _)| *id == pid) else { return false };
        let name = String::from_utf16_lossy(name).to_lowercase();
        processes.iter().any(|(_, parent, child)| *parent == pid && String::from_utf16_lossy(child).to_lowercase() == name)
    }

    /// Resumes the one thread of a process created suspended. Windows gives no handle to it
    /// through `std`, so it is found in a snapshot of the system's threads.
    pub(crate) fn resume(pid: u32) -> io::Result<()> {
        // SAFETY: the snapshot handle is checked and closed; the entry is initialised with its size.
        unsafe {
            let snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
            if snapshot == INVALID_HANDLE_VALUE {
                return Err(io::Error::last_os_error());
            }
            let mut entry: THREADENTRY32 = std::mem::zeroed();
            entry.dwSize = size_of::<THREADENTRY32>() as u32;
            let mut result = Err(io::Error::other(format!("no thread of process {pid} to resume")));
            let mut more = Thread32First(snapshot, &mut entry) != 0;
            while more {
                if entry.th32OwnerProcessID == pid {
                    let thread = OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID);
                    if thread.is_null() {
                        result = Err(io::Error::last_os_error());
                    } else {
                        result = if ResumeThread(thread) == u32::MAX { Err(io::Error::last_os_error()) } else { Ok(()) };
                        CloseHandle(thread);
                    }
                    break;
                }
                more = Thread32Next(snapshot, &mut entry) != 0;
            }
            CloseHandle(snapshot);
            result
        }
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
        let out = super::layout::nginx_command(binary, layout, &["-s", name], super::layout::names::CONF).output().await?;
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

/// Whether `pid` is an nginx running in `prefix`: nginx is given only relative names and runs
/// in its prefix (see `layout`), so its working directory, not its command line, says which
/// prefix it serves. `None` when the platform gives us no way to ask (Windows: there the Job
/// Object ends every nginx with us, and a stale one is asked to stop through `nginx -s`).
pub(crate) fn is_nginx_in(pid: u32, prefix: &Path) -> Option<bool> {
    #[cfg(unix)]
    {
        let cwd = process_cwd(pid)?;
        let same_dir = std::fs::canonicalize(prefix).is_ok_and(|p| p == cwd);
        Some(same_dir && process_cmdline(pid)?.contains("nginx"))
    }
    #[cfg(not(unix))]
    {
        let _ = (pid, prefix);
        None
    }
}

/// A process's working directory.
#[cfg(unix)]
fn process_cwd(pid: u32) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
    }
    #[cfg(target_os = "macos")]
    {
        let pid = libc::c_int::try_from(pid).ok()?;
        // SAFETY: the buffer is a zeroed struct of exactly the size passed.
        let info = unsafe {
            let mut info: libc::proc_vnodepathinfo = std::mem::zeroed();
            let size = size_of::<libc::proc_vnodepathinfo>() as libc::c_int;
            if libc::proc_pidinfo(pid, libc::PROC_PIDVNODEPATHINFO, 0, (&mut info as *mut libc::proc_vnodepathinfo).cast(), size) != size {
                return None;
            }
            info
        };
        // SAFETY: the kernel wrote a NUL-terminated path into the fixed-size array.
        let path = unsafe { std::ffi::CStr::from_ptr(info.pvi_cdir.vip_path.as_ptr().cast()) };
        use std::os::unix::ffi::OsStrExt;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes())))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = pid;
        None
    }
}

/// The command line of a running process, to recognise an nginx of ours before signalling a pid
/// read from a file (the pid may have been reused by an unrelated program). `None` when the
/// platform gives us no way to ask.
#[cfg(unix)]
fn process_cmdline(pid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        // nginx rewrites its argv to "nginx: master process <binary> -p ./ ..." or "nginx: worker process".
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        Some(String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let out = crate::child::command("ps").args(["-o", "command=", "-p", &pid.to_string()]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
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

/// The system's own file of trusted root certificates, which the snippet for people who run
/// their own nginx names for `https` upstreams (the managed nginx gets a copy of the system's
/// roots in its prefix instead, on every OS: see `upstream_ca`).
pub(crate) fn system_ca_bundle() -> Option<PathBuf> {
    let candidates: &[&str] = if cfg!(windows) {
        // Windows keeps its roots in the certificate store, not in a file.
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

    /// nginx is created suspended and runs only once it is in its job, its children join the job,
    /// and ending the job (or dropping it, as when the engine exits) ends the whole tree. A
    /// `cmd` that starts a `ping` stands in for an nginx master that starts a worker.
    #[cfg(windows)]
    #[tokio::test]
    async fn the_job_holds_the_child_and_its_children_from_the_start() {
        use std::time::{Duration, Instant};
        let mut command = crate::child::tokio_command("cmd");
        command.args(["/C", "ping -n 60 127.0.0.1 >NUL"]);
        let mut child = super::super::launcher::spawn_contained(command).await.unwrap();
        let containment = after_spawn(&child).unwrap();
        // It runs (it was resumed) and its child joined the job.
        let deadline = Instant::now() + Duration::from_secs(20);
        while containment.job.active_processes() < 2 {
            assert!(Instant::now() < deadline, "the resumed cmd never started its ping inside the job");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(tokio::time::timeout(Duration::from_millis(300), child.wait()).await.is_err(), "still running");
        // cmd and ping, and under Wine also a console host of theirs.
        assert!(containment.kill_leftovers(child.id().unwrap()) >= 2);
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("ended with its job").unwrap();
        assert_eq!(containment.job.active_processes(), 0);

        // Dropping the containment (the engine going away) ends a running tree too.
        let mut command = crate::child::tokio_command("cmd");
        command.args(["/C", "ping -n 60 127.0.0.1 >NUL"]);
        let mut child = super::super::launcher::spawn_contained(command).await.unwrap();
        let containment = after_spawn(&child).unwrap();
        while containment.job.active_processes() < 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(containment);
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("ended when the job closed").unwrap();
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
