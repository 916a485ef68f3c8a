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
//! time from `simpleotp serve` to the first protected response.
//!
//! Results go to `docs/bench/` (markdown, JSON, SVG chart); `--quick` is the CI smoke run (short,
//! one connection count, results in a temp dir, no thresholds). `--soak SECONDS` is the
//! sustained-load run of the hardening work (see `soak.rs`).

mod chart;
mod measure;
mod report;
mod soak;

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
