//! The results as a markdown page, with the targets checked.

use std::fmt::Write;

use crate::measure::{Results, WrkRun};
use crate::tray::{Snapshot, TrayMemory};

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn row(out: &mut String, connections: u32, name: &str, run: &WrkRun) {
    let cpu = run.auth_cpu_percent.map(|c| format!("{c:.0} %")).unwrap_or_else(|| "–".into());
    let _ = writeln!(
        out,
        "| {connections} | {name} | {:.0} | {} | {} | {} | {} | {cpu} |",
        run.requests_per_second(),
        ms(run.p50_us),
        ms(run.p99_us),
        ms(run.p999_us),
        run.errors(),
    );
}

/// Whether a target holds, as a table cell.
fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

pub fn markdown(results: &Results) -> String {
    let m = &results.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# SimpleOTP benchmark\n");
    let _ = writeln!(
        out,
        "Machine: {} ({} cores), {}; {}; {}. Load average at the start: {}. Each wrk run lasts {} s; all runs are in one session, side by side.\n",
        m.cpu, m.cores, m.kernel, m.nginx, m.wrk, m.load_average, m.duration_s
    );
    let _ = writeln!(out, "Rerun: `bench/run` (writes this file, `results.json` and `chart.svg` to `docs/bench/`).\n");
    let _ = writeln!(out, "![requests per second](chart.svg)\n");
    let _ = writeln!(out, "## Throughput and latency\n");
    let _ = writeln!(out, "A: nginx → app, unprotected. B: protected by SimpleOTP, valid cookie. C: the same protection config with a no-op auth server (the floor). D: no cookie (302 to the login page). Errors: connect/read/write/timeouts plus responses other than 2xx/3xx. CPU: the auth server process (B, D: `simpleotp serve`; C: the no-op server), % of one core.\n");
    let _ = writeln!(out, "| conns | scenario | req/s | p50 ms | p99 ms | p99.9 ms | errors | auth CPU |");
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for level in &results.levels {
        row(&mut out, level.connections, "A unprotected", &level.a_unprotected);
        row(&mut out, level.connections, "B protected", &level.b_protected);
        row(&mut out, level.connections, "C no-op auth (floor)", &level.c_noop_auth);
        row(&mut out, level.connections, "D no cookie → login", &level.d_no_cookie);
    }
    let _ = writeln!(out, "\n## Ratios\n");
    let _ = writeln!(out, "| conns | B/A | B/C |");
    let _ = writeln!(out, "|---:|---:|---:|");
    for level in &results.levels {
        let b = level.b_protected.requests_per_second();
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} |",
            level.connections,
            b / level.a_unprotected.requests_per_second(),
            b / level.c_noop_auth.requests_per_second()
        );
    }

    let burst = &results.burst;
    let _ = writeln!(out, "\n## Under a burst of wrong codes\n");
    let _ = writeln!(
        out,
        "While 64 connections post wrong codes to the login endpoint ({:.0} attempts/s answered, all refused: {} non-2xx/3xx, p50 {} ms — each failure is held ≥ 250 ms), B at 16 connections serves {:.0} req/s, p99 {} ms, {} errors.\n",
        burst.wrong_codes.requests_per_second(),
        burst.wrong_codes.status_errors,
        ms(burst.wrong_codes.p50_us),
        burst.check_during_burst.requests_per_second(),
        ms(burst.check_during_burst.p99_us),
        burst.check_during_burst.errors()
    );

    let mem = &results.memory;
    let _ = writeln!(out, "## Memory and start-up\n");
    let _ = writeln!(out, "| what | value |\n|---|---:|");
    let _ = writeln!(out, "| engine RSS, idle | {} |", mib(mem.idle_rss_kib));
    let _ = writeln!(out, "| engine RSS, peak under load | {} |", mib(mem.max_rss_under_load_kib));
    let _ = writeln!(out, "| engine RSS with {} sessions | {} |", mem.sessions, mib(mem.rss_with_sessions_kib));
    let _ = writeln!(
        out,
        "| B at 16 conns with {} sessions | {:.0} req/s, p99 {} ms |",
        mem.sessions,
        mem.check_with_sessions.requests_per_second(),
        ms(mem.check_with_sessions.p99_us)
    );
    let _ = writeln!(out, "| `simpleotp serve` start → first protected response | {:.0} ms |", mem.startup_ms);
    let _ = writeln!(out, "| the same with {} sessions to load | {:.0} ms |", mem.sessions, mem.startup_with_sessions_ms);
    let _ = writeln!(out, "\nThe tray app's memory (before, with and after its window): [tray.md](tray.md).");

    let _ = writeln!(out, "\n## Targets\n");
    let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
    for level in results.levels.iter().filter(|l| l.connections == 16 || l.connections == 64) {
        let ratio = level.b_protected.requests_per_second() / level.c_noop_auth.requests_per_second();
        let _ = writeln!(out, "| B/C ≥ 0.9 at {} conns | {ratio:.2} | {} |", level.connections, verdict(ratio >= 0.9));
    }
    if let Some(level) = results.levels.iter().find(|l| l.connections == 16) {
        let p99 = level.b_protected.p99_us;
        let _ = writeln!(out, "| B p99 ≤ 2 ms at 16 conns | {} ms | {} |", ms(p99), verdict(p99 <= 2000));
    }
    let errors: u64 = results
        .levels
        .iter()
        .map(|l| l.a_unprotected.errors() + l.b_protected.errors() + l.c_noop_auth.errors() + l.d_no_cookie.errors())
        .sum();
    let _ = writeln!(out, "| zero errors at every level | {errors} | {} |", verdict(errors == 0));
    let limit = 64 * 1024;
    let _ = writeln!(
        out,
        "| RSS with {} sessions < 64 MiB | {} | {} |",
        mem.sessions,
        mib(mem.rss_with_sessions_kib),
        verdict(mem.rss_with_sessions_kib < limit)
    );
    out
}

/// The tray app's memory in its three states, by process, with its targets.
pub fn tray_markdown(tray: &TrayMemory) -> String {
    let mut out = String::new();
    let states = [("never opened", &tray.never_opened), ("window open", &tray.open), ("window closed", &tray.closed)];
    let _ = writeln!(out, "# The tray app's memory\n");
    let _ = writeln!(
        out,
        "Release build under Xvfb with openbox, set up (a secret and one protected app) and started as at login. \
         *Never opened*: {s} s after protection came up, no window yet. *Window open*: a second launch showed the window, \
         measured {s} s later. *Window closed*: `wmctrl -c SimpleOTP` closed it as a person does, measured {s} s later. \
         Each figure is PSS (`/proc/PID/smaps_rollup`) summed over the app's whole process tree: the app, WebKit's \
         processes and nginx (master and worker).\n",
        s = tray.settle_s
    );
    let _ = writeln!(out, "Rerun: `bench/run --tray` (writes this file and `tray.json`).\n");
    let _ = writeln!(out, "| | never opened | window open | window closed |\n|---|---:|---:|---:|");
    let row = |out: &mut String, name: &str, value: &dyn Fn(&Snapshot) -> u64| {
        let cells: Vec<String> = states.iter().map(|(_, s)| mib(value(s))).collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    row(&mut out, "**all processes (PSS)**", &|s| s.pss_kib());
    row(&mut out, "the app (`simpleotp-app`)", &|s| s.pss_of("simpleotp-app"));
    row(&mut out, "… of it mapped files (libraries)", &|s| {
        s.processes.iter().filter(|p| p.name == "simpleotp-app").map(|p| p.pss_file_kib).sum()
    });
    row(&mut out, "`WebKitWebProcess`", &|s| s.pss_of("WebKitWebProcess"));
    row(&mut out, "`WebKitNetworkProcess`", &|s| s.pss_of("WebKitNetworkProcess"));
    row(&mut out, "nginx (master + worker)", &|s| s.pss_of("nginx"));
    row(&mut out, "RSS summed (counts shared pages once per process)", &|s| s.processes.iter().map(|p| p.rss_kib).sum());
    let counts: Vec<String> = states.iter().map(|(_, s)| s.processes.len().to_string()).collect();
    let _ = writeln!(out, "| processes | {} |", counts.join(" | "));

    let (never, closed) = (tray.never_opened.pss_kib(), tray.closed.pss_kib());
    let _ = writeln!(out, "\n## Targets\n");
    let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
    let ratio = closed as f64 / never.max(1) as f64;
    let _ = writeln!(out, "| closed ≤ 1.1 × never opened | {ratio:.2} × | {} |", verdict(ratio <= 1.1));
    let _ = writeln!(out, "| closed ≤ 150 MiB | {} | {} |", mib(closed), verdict(closed <= 150 * 1024));
    let _ = writeln!(out, "| stretch: closed ≤ 60 MiB | {} | {} |", mib(closed), verdict(closed <= 60 * 1024));
    let _ = writeln!(
        out,
        "| the protected app still served after the close | {} | {} |",
        if tray.serves_after_close { "yes" } else { "no" },
        verdict(tray.serves_after_close)
    );
    out
}
