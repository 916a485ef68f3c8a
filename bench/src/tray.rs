//! The tray app's memory as a person meets it: in the tray before the window was ever opened,
//! with the window open, and after closing it.
//!
//! A tray app is not one process: WebKitGTK renders the page in `WebKitWebProcess` and loads
//! through `WebKitNetworkProcess`, and the engine runs nginx (a master and a worker). Each figure
//! is the PSS (`/proc/PID/smaps_rollup`: private pages plus a fair share of shared ones, so
//! libraries the processes share are not counted twice) summed over the app's whole process
//! tree.
//!
//! The run needs a display, a window manager and a D-Bus session (a second launch finds the
//! running app over D-Bus), so [`measure`] runs this same binary again, as
//! `--tray-inside OUT.json`, under `scripts/with-keyring.sh` and `xvfb-run`; [`inside`] does the
//! steps there: openbox as the window manager; the app started as at login (`--autostart`, set
//! up with a secret and one protected app, so no window opens); a second launch, which shows
//! the window in the running app; `wmctrl -c`, which closes it as a person does (the window
//! manager's close request, WM_DELETE_WINDOW).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use simpleotp_engine::config::{AppConfig, Config};
use simpleotp_engine::secret::SecretStore;
use simpleotp_engine::totp::TotpSecret;

/// The window's title, as `wmctrl` finds it.
const TITLE: &str = "SimpleOTP";
/// How long the app idles in each state before it is measured.
const SETTLE: Duration = Duration::from_secs(10);

/// One process of the app's tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    pub pss_kib: u64,
    /// PSS of file-backed pages (mapped libraries, for the most part).
    pub pss_file_kib: u64,
    pub rss_kib: u64,
}

/// The app's process tree at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub processes: Vec<Process>,
}

impl Snapshot {
    pub fn pss_kib(&self) -> u64 {
        self.processes.iter().map(|p| p.pss_kib).sum()
    }

    /// PSS of the processes whose name starts with `prefix`.
    pub fn pss_of(&self, prefix: &str) -> u64 {
        self.processes.iter().filter(|p| p.name.starts_with(prefix)).map(|p| p.pss_kib).sum()
    }

    fn webkit(&self) -> Vec<&Process> {
        self.processes.iter().filter(|p| p.name.starts_with("WebKit")).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrayMemory {
    pub never_opened: Snapshot,
    pub open: Snapshot,
    pub closed: Snapshot,
    /// Seconds each state idled before it was measured.
    pub settle_s: u64,
    /// The protected app still answered (nginx → auth server → login page) after the close.
    pub serves_after_close: bool,
}

type TrayResult<T> = Result<T, String>;

/// Runs [`inside`] under a throw-away D-Bus session and keyring and a private X server.
pub fn measure() -> TrayResult<TrayMemory> {
    let bench = std::env::current_exe().map_err(|e| e.to_string())?;
    let app = bench.with_file_name("simpleotp-app");
    if !app.exists() {
        return Err(format!("{} is missing: build it with `cargo build --release -p simpleotp-app`", app.display()));
    }
    for tool in ["xvfb-run", "openbox", "wmctrl"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            return Err(format!("{tool} is missing: run scripts/tray-deps.sh"));
        }
    }
    let out = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let keyring = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/with-keyring.sh");
    let status = Command::new(keyring)
        .args(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24"])
        .arg(&bench)
        .arg("--tray-inside")
        .arg(out.path())
        .status()
        .map_err(|e| format!("cannot run scripts/with-keyring.sh: {e}"))?;
    if !status.success() {
        return Err(format!("the tray measurement failed ({status})"));
    }
    let text = std::fs::read_to_string(out.path()).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// The measurement proper, on the display and bus it was started in; writes JSON to `out`.
pub fn inside(out: &Path) -> TrayResult<()> {
    let app = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("simpleotp-app");
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let env = set_up(home.path())?;
    let mut wm = Reaped(Command::new("openbox").stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("openbox: {e}"))?);
    wait_for("the window manager", Duration::from_secs(20), || wmctrl(&["-m"]).is_some())?;

    let launch =
        |args: &[&str]| Command::new(&app).args(args).envs(env.vars.iter().cloned()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let mut tray = Reaped(launch(&["--autostart"]).map_err(|e| format!("cannot start {}: {e}", app.display()))?);
    let pid = tray.0.id();
    wait_for("protection to come up", Duration::from_secs(30), || serves(env.port))?;
    std::thread::sleep(SETTLE);
    let never_opened = snapshot(pid);
    if !never_opened.webkit().is_empty() || window_open() {
        return Err("a window opened at launch, as at login it must not".into());
    }

    // A second launch hands over to the running app, which shows its window.
    let status = launch(&[]).and_then(|mut c| c.wait()).map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the second launch failed: {status}"));
    }
    wait_for("the window", Duration::from_secs(30), window_open)?;
    wait_for("WebKit's processes", Duration::from_secs(30), || !snapshot(pid).webkit().is_empty())?;
    std::thread::sleep(SETTLE);
    let open = snapshot(pid);

    // Closed as a person closes it: the window manager asks the app to close the window.
    wmctrl(&["-c", TITLE]).ok_or("wmctrl -c failed")?;
    wait_for("the window to close", Duration::from_secs(20), || !window_open())?;
    let left = Instant::now();
    // WebKit's processes end a moment after the window (the app ends the network process
    // itself); measured after the same settling time as the other states either way.
    let _ = wait_for("WebKit's processes to end", SETTLE, || snapshot(pid).webkit().is_empty());
    std::thread::sleep(SETTLE.saturating_sub(left.elapsed()));
    let closed = snapshot(pid);
    if let Ok(Some(status)) = tray.0.try_wait() {
        return Err(format!("the app exited when its window was closed ({status})"));
    }
    let serves_after_close = serves(env.port);

    let result = TrayMemory { never_opened, open, closed, settle_s: SETTLE.as_secs(), serves_after_close };
    std::fs::write(out, serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    // A clean stop (SIGTERM is the same as Quit), so nginx does not outlive the run.
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = wait_for("the app to stop", Duration::from_secs(15), || matches!(tray.0.try_wait(), Ok(Some(_))));
    let _ = wm.0.kill();
    Ok(())
}

/// A child that is killed and reaped when dropped (also on an early return).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

struct AppEnv {
    vars: Vec<(String, PathBuf)>,
    port: u16,
}

/// A set-up app in `home`: a secret (in a file, so no keychain process is involved) and one
/// protected app, whose upstream need not run (the login page comes from the auth server).
fn set_up(home: &Path) -> TrayResult<AppEnv> {
    let secret_file = home.join("secret");
    SecretStore::file(&secret_file).store(&TotpSecret::generate(), false).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?;
    let mut config = Config::default();
    config.apps.push(AppConfig::new("Bench".parse()?, format!("http://{upstream}").parse()?, format!("127.0.0.1:{port}").parse()?));
    let config_file = home.join("config.toml");
    config.save(&config_file).map_err(|e| e.to_string())?;
    let vars = vec![
        ("HOME".to_string(), home.to_path_buf()),
        ("XDG_CONFIG_HOME".to_string(), home.join("config")),
        ("XDG_DATA_HOME".to_string(), home.join("share")),
        ("XDG_CACHE_HOME".to_string(), home.join("cache")),
        ("SIMPLEOTP_CONFIG".to_string(), config_file),
        ("SIMPLEOTP_DATA_DIR".to_string(), home.join("data")),
        ("SIMPLEOTP_SECRET_FILE".to_string(), secret_file),
    ];
    Ok(AppEnv { vars, port })
}

/// Whether the protected address serves the login page (nginx asked the auth server, which
/// said 401, and nginx sent the browser to the login page).
fn serves(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /_simpleotp/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok() && stream.read_to_string(&mut response).is_ok() && response.starts_with("HTTP/1.1 200")
}

fn wmctrl(args: &[&str]) -> Option<String> {
    let output = Command::new("wmctrl").args(args).stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn window_open() -> bool {
    // `wmctrl -l`: id, desktop, host, title.
    wmctrl(&["-l"]).is_some_and(|list| list.lines().any(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" ") == TITLE))
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> TrayResult<()> {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if done() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("timed out waiting for {what}"))
}

/// `root` and every process below it, measured.
pub fn snapshot(root: u32) -> Snapshot {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    let processes = tree
        .into_iter()
        .filter_map(|pid| {
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
            let field = |name: &str| {
                rollup
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    .unwrap_or(0)
            };
            let name = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?.file_name()?.to_string_lossy().into_owned();
            Some(Process { pid, name, pss_kib: field("Pss:"), pss_file_kib: field("Pss_File:"), rss_kib: field("Rss:") })
        })
        .collect();
    Snapshot { processes }
}
