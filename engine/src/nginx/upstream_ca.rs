//! The roots an `https` upstream's certificate is checked against.
//!
//! nginx checks an upstream's certificate only against a PEM file it is given
//! (`proxy_ssl_trusted_certificate`). Linux and macOS have such a file somewhere; Windows keeps
//! its roots in the certificate store, which nginx cannot read, so with `tls_verify` on (the
//! default) every `https` upstream failed there. One way on every OS: the system's roots are read
//! with `rustls-native-certs` (the certificate store on Windows, the keychain on macOS, the
//! OpenSSL bundle on Linux) and written into the prefix as one PEM file, which the managed
//! config names (`layout::names::UPSTREAM_CA`). Linux runs the same code as Windows.

use super::layout::NginxLayout;
use super::NginxError;
use crate::config::AppConfig;
use crate::fsutil::write_atomic;

/// Whether any of `apps` has its upstream's certificate checked.
fn needed(apps: &[AppConfig]) -> bool {
    apps.iter().any(|app| app.upstream.scheme() == "https" && app.tls_verify)
}

/// Writes the system's trusted roots to the prefix when an app needs them (before `nginx -t`).
/// Read anew at every start and configuration change, so roots the system gained since count.
pub(super) fn write_if_needed(layout: &NginxLayout, apps: &[AppConfig]) -> Result<(), NginxError> {
    if !needed(apps) {
        return Ok(());
    }
    let pem = system_roots_pem()?;
    let path = layout.upstream_ca_path();
    write_atomic(&path, pem.as_bytes()).map_err(|e| NginxError::io(format!("write {}", path.display()), e))
}

/// The system's trusted root certificates as one PEM text.
fn system_roots_pem() -> Result<String, NginxError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        // Some stores hold entries that cannot be read; the others are still good.
        tracing::debug!("while reading the system's trusted roots: {error}");
    }
    if found.certs.is_empty() {
        let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(NginxError::NoTrustedRoots { why });
    }
    Ok(found.certs.iter().map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(upstream: &str, tls_verify: bool) -> AppConfig {
        let app = AppConfig::new("App".parse().unwrap(), upstream.parse().unwrap(), "127.0.0.1:8081".parse().unwrap());
        AppConfig { tls_verify, ..app }
    }

    #[test]
    fn only_checked_https_upstreams_need_the_roots() {
        assert!(needed(&[app("http://127.0.0.1:1", true), app("https://example.org", true)]));
        assert!(!needed(&[app("https://example.org", false), app("http://127.0.0.1:1", true)]));
        assert!(!needed(&[]));
    }

    /// The system's roots, read the way Windows reads them too, are real certificates (openssl
    /// reads each back), and nothing is written when no app needs them.
    #[cfg(unix)]
    #[test]
    fn the_systems_roots_are_written_for_a_checked_https_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let layout = NginxLayout::new(dir.path().join("nginx"));
        layout.prepare().unwrap();
        write_if_needed(&layout, &[app("http://127.0.0.1:1", true)]).unwrap();
        assert!(!layout.upstream_ca_path().exists());
        write_if_needed(&layout, &[app("https://example.org", true)]).unwrap();
        let text = std::fs::read_to_string(layout.upstream_ca_path()).unwrap();
        let count = text.matches("-----BEGIN CERTIFICATE-----").count();
        assert!(count > 10, "{count} roots");
        let out = crate::child::command("openssl")
            .args(["storeutl", "-noout", "-certs"])
            .arg(layout.upstream_ca_path())
            .output()
            .expect("openssl is needed for this test");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && said.contains(&format!("Total found: {count}")), "{said}{}", String::from_utf8_lossy(&out.stderr));
    }
}
