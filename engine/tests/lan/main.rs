//! Other devices on the network, with the real parts, inside a network namespace each test makes.
//!
//! A gateway that listens beyond loopback must be reached at a real, non-loopback address, and a
//! test must be able to add an address to the machine while the gateway runs. Doing that on the
//! host would change the machine's network for everyone; so every test here runs inside its own
//! network namespace ([`netns`]): the test re-executes its own binary under `unshare --net`, with
//! an environment variable naming the test to run inside. There the namespace's `lo` gets a
//! private address (no `dummy` links on these kernels), and everything talks over it: the real
//! `simpleotp serve`, the real nginx, `openssl`, `curl` and headless Chromium with the CA in its
//! NSS database.
//!
//! * [`netns`]: the re-execution harness (needs root, like `unshare --net`).
//! * [`support`]: starting `simpleotp serve`, TLS and HTTP probes with `openssl`/`curl`, chromedriver.
//! * [`https`]: HTTPS that verifies, by address and `<hostname>.local`, and follows new addresses.
//! * [`passkeys`]: passkeys made and used at `<hostname>.local` over verified HTTPS.
//! * [`mdns`]: `<hostname>.local` and the apps advertised over mDNS, and withdrawn on shutdown.
// Tests and the benchmark start their own helper programs (openssl, curl, chromedriver, wrk…) directly;
// the product starts programs only through simpleotp_engine::child (clippy.toml).
#![allow(clippy::disallowed_methods)]
#![cfg(target_os = "linux")]

mod https;
mod mdns;
mod netns;
mod passkeys;
mod support;
