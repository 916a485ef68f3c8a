//! `simpleotp-bench`: what protection costs, measured side by side in one run.
//!
//! Scenarios, all through the real nginx over loopback, driven by `wrk`:
//!
//! * **A** nginx proxying to a small static app, unprotected (the same generated server block
//!   with `auth_request` taken out);
//! * **B** the same app protected by `simpleotp serve`, with a valid session cookie;
//! * **C** the same protection config pointed at a no-op auth server that answers 200 at once on
//!   the same keep-alive upstream: the floor any `auth_request` gateway can reach;
//! * **D** requests without a cookie (401 → redirect to the login page), and B again while a
//!   burst of wrong codes hits the login endpoint.
//!
//! Each connection count runs A, B, C, D back to back, so the ratios hold on a noisy machine.
//! Then memory and start-up: the engine's RSS idle, under load and with 100 000 sessions, and the
//! time from `simpleotp serve` to the first protected response. Last, the tray app's memory
//! (whole process tree) before its window was ever opened, with it open and after closing it
//! (`tray.rs`, written to `tray.md`).
//!
//! Results go to `docs/bench/` (markdown, JSON, SVG chart); `--quick` is the CI smoke run (short,
//! one connection count, results in a temp dir, no thresholds, no tray). `--tray` measures only
//! the tray app. `--soak SECONDS` is the sustained-load run of the hardening work (see `soak.rs`).
// Tests and the benchmark start their own helper programs (openssl, curl, chromedriver, wrk…) directly;
// the product starts programs only through simpleotp_engine::child (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod chart;
mod measure;
mod report;
mod soak;
mod tray;

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).map(PathBuf::from).unwrap_or_else(|| {
        if quick {
            std::env::temp_dir().join("simpleotp-bench")
        } else {
            PathBuf::from("docs/bench")
        }
    });
    if let Some(json) = args.iter().position(|a| a == "--tray-inside").and_then(|i| args.get(i + 1)) {
        if let Err(e) = tray::inside(std::path::Path::new(json)) {
            eprintln!("tray measurement: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--tray") {
        return tray_main(&out, true);
    }
    if let Some(seconds) = args.iter().position(|a| a == "--soak").map(|i| args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(180)) {
        return soak_main(seconds, &out);
    }
    let plan = if quick { measure::Plan::quick() } else { measure::Plan::full() };

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let results = match runtime.block_on(measure::run(&plan)) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    };
    std::fs::create_dir_all(&out).expect("create the output directory");
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results).unwrap()).unwrap();
    std::fs::write(out.join("results.md"), report::markdown(&results)).unwrap();
    std::fs::write(out.join("chart.svg"), chart::svg(&results)).unwrap();
    println!("{}", report::markdown(&results));
    println!("written to {}", out.display());
    if !quick {
        tray_main(&out, false);
    }
}

/// The tray app's three memory figures, to `tray.md` and `tray.json`. Fails the run when it was
/// asked for on its own (`--tray`); in the full run a machine without a display server only
/// skips it.
fn tray_main(out: &std::path::Path, required: bool) {
    match tray::measure() {
        Ok(memory) => {
            std::fs::create_dir_all(out).expect("create the output directory");
            let text = report::tray_markdown(&memory);
            std::fs::write(out.join("tray.json"), serde_json::to_string_pretty(&memory).unwrap()).unwrap();
            std::fs::write(out.join("tray.md"), &text).unwrap();
            println!("{text}");
            println!("written to {}", out.join("tray.md").display());
        }
        Err(e) => {
            eprintln!("tray app not measured: {e}");
            if required {
                std::process::exit(1);
            }
        }
    }
}

/// `--soak SECONDS`: the sustained-load run; exits non-zero when it saw errors or growth.
fn soak_main(seconds: u64, out: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let results = match runtime.block_on(soak::run(seconds)) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("soak run failed: {e}");
            std::process::exit(1);
        }
    };
    std::fs::create_dir_all(out).expect("create the output directory");
    let text = soak::markdown(&results);
    std::fs::write(out.join("soak.md"), &text).unwrap();
    std::fs::write(out.join("soak.json"), serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("{text}");
    if let Err(problems) = soak::check(&results) {
        eprintln!("soak run: {problems}");
        std::process::exit(1);
    }
}
