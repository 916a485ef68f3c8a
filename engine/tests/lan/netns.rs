//! Running one test inside a fresh network namespace.
//!
//! `#[test] fn t() { netns::run("https::t", || async { ... }) }`: outside a namespace, `run`
//! starts this very test binary again under `unshare --net`, filtered to exactly that test, with
//! [`INNER_VAR`] naming it; the child sees the variable, brings the namespace's `lo` up with the
//! private address [`LAN_ADDRESS`], and runs the body. The parent passes on the child's output
//! and fails when it fails. Both are the same `cargo test` run, so `scripts/test` runs these
//! with everything else.

use std::future::Future;
use std::process::Command;

/// Names the test the re-executed binary runs inside the namespace.
const INNER_VAR: &str = "SIMPLEOTP_TEST_INSIDE_NETNS";

/// The namespace's "LAN" address (on its `lo`; RFC 1918, so SimpleOTP's CA may vouch for it).
pub const LAN_ADDRESS: &str = "10.77.1.1";

/// Runs `body` inside a new network namespace (see the module docs). `name` is the test's path
/// in this binary (`module::function`).
pub fn run<F: Future<Output = ()>>(name: &str, body: impl FnOnce() -> F) {
    if std::env::var(INNER_VAR).as_deref() == Ok(name) {
        ip(&["link", "set", "lo", "up"]);
        ip(&["addr", "add", &format!("{LAN_ADDRESS}/32"), "dev", "lo"]);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(body());
        return;
    }
    let me = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(&me)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_VAR, name)
        .output()
        .expect("cannot run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        !stderr.contains("unshare failed"),
        "these tests make a network namespace and need root (unshare --net): run the test suite as root"
    );
    assert!(output.status.success(), "{name} failed inside its network namespace (output above)");
    assert!(stdout.contains("1 passed"), "{name} did not run inside the namespace:\n{stdout}");
}

/// `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("cannot run ip (iproute2)");
    assert!(status.success(), "ip {} failed", args.join(" "));
}
