//! HTTPS for network-facing apps, from SimpleOTP's own CA, with certificates that follow the
//! machine's addresses. Each test runs in its own network namespace (see [`crate::netns`]).

use std::time::{Duration, Instant};

use fantoccini::Locator;

use crate::netns::{self, LAN_ADDRESS};
use crate::support::*;

/// The CA certificate, from the gateway's data directory (public; the key is elsewhere).
fn ca_file(serve: &Serve) -> std::path::PathBuf {
    let secret = simpleotp_engine::secret::SecretStore::file(serve.dir.path().join("secret"));
    let path = simpleotp_engine::ca::CaStore::beside(&secret, &serve.data_dir).certificate_path().to_path_buf();
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("-----BEGIN CERTIFICATE-----"), "{}", path.display());
    path
}

/// The base64 body of a PEM block (what a leak would contain, whatever the line breaks).
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()
}

/// An app on 0.0.0.0 answers over TLS at the LAN address and at `<hostname>.local`, with a chain
/// `openssl verify` and `curl --cacert` accept; plain HTTP is redirected to https:// except the
/// CA page; the loopback app stays plain HTTP; a sign-in over TLS gets a `Secure`, `__Host-`
/// cookie; `serve` printed the URLs; no private key is in the config or any log.
#[test]
fn lan_app_is_served_over_tls_that_verifies_by_address_and_local_name() {
    netns::run("https::lan_app_is_served_over_tls_that_verifies_by_address_and_local_name", || async {
        let mut serve = Serve::start().await;
        let local_name = machine_local_name();
        let port = serve.lan_port;

        // `serve` prints each app's URLs: HTTPS by name and by address for the LAN app.
        let printed = serve.stdout();
        for url in [
            format!("https://{local_name}:{port}/"),
            format!("https://{LAN_ADDRESS}:{port}/"),
            format!("http://localhost:{}/", serve.local_port),
        ] {
            assert!(printed.contains(&url), "serve did not print {url}:\n{printed}");
        }
        assert!(!printed.contains(&format!("http://{LAN_ADDRESS}")), "{printed}");

        // Plain HTTP on the TLS port is redirected to https://, path and query kept.
        let ca = ca_file(&serve);
        let redirect = curl(&[&format!("http://{LAN_ADDRESS}:{port}/notebooks/x.ipynb?a=1")]);
        assert_eq!(redirect.status, 301, "{redirect:?}");
        assert_eq!(redirect.header("location").as_deref(), Some(format!("https://{LAN_ADDRESS}:{port}/notebooks/x.ipynb?a=1").as_str()));
        let login_plain = curl(&[&format!("http://{LAN_ADDRESS}:{port}/_simpleotp/login")]);
        assert_eq!(login_plain.status, 301, "the login page is never served over plain HTTP on the LAN: {login_plain:?}");

        // The chain nginx presents verifies for the address and for <hostname>.local.
        for server_name in [LAN_ADDRESS, local_name.as_str()] {
            let chain = presented_chain(LAN_ADDRESS, port, server_name);
            assert!(!chain.is_empty(), "no certificate presented for {server_name}");
            openssl_verify(&ca, &chain[0], &["-verify_ip", LAN_ADDRESS]).unwrap();
            openssl_verify(&ca, &chain[0], &["-verify_hostname", &local_name]).unwrap();
            openssl_verify(&ca, &chain[0], &["-verify_hostname", "localhost"]).unwrap();
            // A name the certificate does not cover is refused (the check can fail).
            assert!(openssl_verify(&ca, &chain[0], &["-verify_hostname", "example.com"]).is_err());
        }
        let ca_arg = ca.to_str().unwrap();
        let by_ip = curl(&["--cacert", ca_arg, &format!("https://{LAN_ADDRESS}:{port}/")]);
        assert_eq!(by_ip.status, 302, "{by_ip:?}");
        assert!(by_ip.header("location").unwrap().contains("/_simpleotp/login"), "{by_ip:?}");
        let resolve = format!("{local_name}:{port}:{LAN_ADDRESS}");
        let by_name = curl(&["--cacert", ca_arg, "--resolve", &resolve, &format!("https://{local_name}:{port}/_simpleotp/login")]);
        assert_eq!(by_name.status, 200, "{by_name:?}");
        assert!(by_name.body.contains("id=\"code\""), "the login page: {}", by_name.body);
        // Without the CA, curl refuses the certificate: it is the CA that makes it trusted.
        let untrusted = try_curl(&[&format!("https://{LAN_ADDRESS}:{port}/")]).unwrap_err();
        assert!(untrusted.contains("certificate"), "{untrusted}");
        // TLS 1.1 and older are refused.
        assert!(try_curl(&["--cacert", ca_arg, "--tls-max", "1.1", &format!("https://{LAN_ADDRESS}:{port}/")]).is_err());

        // The loopback app stays plain HTTP.
        let local = curl(&[&format!("http://127.0.0.1:{}/_simpleotp/login", serve.local_port)]);
        assert_eq!(local.status, 200, "{local:?}");

        // Signing in over TLS gives a Secure, __Host- session cookie.
        let code = serve.fresh_code().await;
        let origin = format!("https://{local_name}:{port}");
        let login = curl(&[
            "--cacert",
            ca_arg,
            "--resolve",
            &resolve,
            "-H",
            &format!("Origin: {origin}"),
            "--data",
            &format!("code={code}&next=/"),
            &format!("{origin}/_simpleotp/login"),
        ]);
        assert_eq!(login.status, 303, "{login:?}");
        let cookie = login.header("set-cookie").unwrap();
        assert!(cookie.starts_with(&format!("__Host-simpleotp_{port}=")), "{cookie}");
        assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"), "{cookie}");

        // No private key anywhere it must not be: the CA's and the leaf's keys are in neither
        // the config, nor the gateway's log, nor nginx's config or log.
        let leaf_key = std::fs::read_to_string(serve.data_dir.join("nginx/tls-key.pem")).unwrap();
        let mut keys = vec![pem_body(&leaf_key)];
        keys.extend(ca_key_files(&serve).iter().map(|k| pem_body(k)));
        assert!(keys.len() == 2 && keys.iter().all(|k| k.len() > 40), "the keys to look for: {keys:?}");
        let nginx_conf = std::fs::read_to_string(serve.data_dir.join("nginx/nginx.conf")).unwrap();
        let config = std::fs::read_to_string(&serve.config_path).unwrap();
        for (place, text) in
            [("the config", config), ("the log", serve.log()), ("nginx.conf", nginx_conf), ("nginx's log", serve.nginx_log())]
        {
            for key in &keys {
                assert!(!text.contains(key.as_str()) && !text.contains(&key[..40]), "a private key is in {place}");
            }
        }
        // The CA page and its download are plain HTTP on the TLS port: a phone fetches the CA
        // before it can trust the port's certificate.
        let page = curl(&[&format!("http://{LAN_ADDRESS}:{port}/_simpleotp/ca")]);
        assert_eq!(page.status, 200, "the CA page over plain HTTP: {page:?}");
        let download = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", &format!("http://{LAN_ADDRESS}:{port}/_simpleotp/ca.crt")])
            .output()
            .unwrap();
        assert!(download.status.success(), "the CA download over plain HTTP: {}", String::from_utf8_lossy(&download.stderr));
        assert_eq!(pem_body(&to_pem(&download.stdout)), pem_body(&std::fs::read_to_string(&ca).unwrap()), "the page offers this CA");

        // Only `lo` here, which carries no multicast: mDNS is not possible, the log says so
        // clearly, and everything else works.
        let log = serve.log();
        assert!(log.contains(&format!("cannot advertise {local_name} over mDNS")), "{log}");

        // The leaf's key and chain are the owner's alone.
        use std::os::unix::fs::PermissionsExt;
        for file in ["tls-key.pem", "tls-chain.pem"] {
            let mode = std::fs::metadata(serve.data_dir.join("nginx").join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    });
}

/// The CA's private key as stored next to the secret file (a server keeps its keys in files).
fn ca_key_files(serve: &Serve) -> Vec<String> {
    vec![std::fs::read_to_string(ca_key_path(&serve.dir.path().join("secret"), &serve.data_dir)).unwrap()]
}

/// A browser that trusts the CA (NSS database, `certutil`) signs in over HTTPS by name and gets
/// a `Secure`, `__Host-` cookie; then the machine gets a second address, and within 10 s nginx
/// presents a certificate that covers it, while the browser stays signed in.
#[test]
fn certificate_follows_a_new_address_and_the_browser_stays_signed_in() {
    netns::run("https::certificate_follows_a_new_address_and_the_browser_stays_signed_in", || async {
        let mut serve = Serve::start().await;
        let local_name = machine_local_name();
        let port = serve.lan_port;
        let ca = ca_file(&serve);
        let home = serve.dir.path().join("home");
        trust_in_nss(&home, &ca);

        let driver = ChromeDriver::start(&home).await;
        let browser = driver.session(&local_name, LAN_ADDRESS).await;
        let app_url = format!("https://{local_name}:{port}/notebooks/demo.ipynb");
        browser.goto(&app_url).await.unwrap();
        // A certificate error would show Chromium's interstitial, not the login form.
        let field = match browser.wait().at_most(Duration::from_secs(15)).for_element(Locator::Id("code")).await {
            Ok(field) => field,
            Err(e) => panic!("no login form ({e}) at {}:\n{}", browser.current_url().await.unwrap(), browser.source().await.unwrap()),
        };
        // The sixth digit submits the form by itself (clicking as well could send it twice).
        field.send_keys(&serve.fresh_code().await).await.unwrap();
        past_the_passkey_offer(&browser).await;
        assert_eq!(browser.current_url().await.unwrap().as_str(), app_url);
        let cookies = browser.get_all_cookies().await.unwrap();
        let session = cookies.iter().find(|c| c.name().starts_with("__Host-simpleotp_")).unwrap_or_else(|| panic!("{cookies:?}"));
        assert_eq!(session.name(), format!("__Host-simpleotp_{port}"));
        assert_eq!(session.secure(), Some(true), "{session:?}");

        // A second address (DHCP, another network). Before, nginx's certificate does not cover
        // it; within 10 s it does, without a restart.
        let second = "10.77.2.2";
        let before = presented_chain(LAN_ADDRESS, port, LAN_ADDRESS);
        assert!(openssl_verify(&ca, &before[0], &["-verify_ip", second]).is_err(), "covered before it existed?");
        netns::ip(&["addr", "add", &format!("{second}/32"), "dev", "lo"]);
        let added = Instant::now();
        wait_for_leaf_at(&ca, second, port, Duration::from_secs(10), || serve.log()).await;
        // nginx's reload is asynchronous: until the old workers have stopped accepting, a new
        // connection may still meet the old certificate, so curl is asked until it verifies too.
        let ca_arg = ca.to_str().unwrap();
        let login_by_new = format!("https://{second}:{port}/_simpleotp/login");
        let by_new = loop {
            match try_curl(&["--cacert", ca_arg, &login_by_new]) {
                Ok(reply) => break reply,
                Err(e) => assert!(added.elapsed() < Duration::from_secs(10), "curl refuses {second} after 10 s: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(by_new.status, 200, "{by_new:?}");
        // The old names still verify on the new certificate.
        let after = presented_chain(LAN_ADDRESS, port, &local_name);
        openssl_verify(&ca, &after[0], &["-verify_hostname", &local_name]).unwrap();
        openssl_verify(&ca, &after[0], &["-verify_ip", LAN_ADDRESS]).unwrap();

        // The browser is still signed in: sessions live in the engine, a reload keeps them.
        browser.goto(&app_url).await.unwrap();
        browser.wait().at_most(Duration::from_secs(15)).for_element(Locator::Id("demo-title")).await.unwrap();
        assert_eq!(browser.current_url().await.unwrap().as_str(), app_url, "signed out by the new certificate");
        browser.close().await.unwrap();
    });
}

/// Letting other devices in changes nothing on this computer (#21): the app on 0.0.0.0 answers
/// plain HTTP on loopback, the same port, through the real nginx (which picks TLS or not by the
/// address a connection arrives at), so this computer's browser meets no certificate and signs
/// in with the plain cookie it always had; the LAN address on that port still speaks TLS only.
#[test]
fn an_app_facing_the_network_stays_plain_http_on_this_computer() {
    netns::run("https::an_app_facing_the_network_stays_plain_http_on_this_computer", || async {
        let mut serve = Serve::start().await;
        let port = serve.lan_port;
        let local = format!("http://127.0.0.1:{port}");
        assert!(
            serve.stdout().contains(&format!("http://localhost:{port}/")),
            "serve prints this computer's address too:\n{}",
            serve.stdout()
        );

        let login = curl(&[&format!("{local}/_simpleotp/login")]);
        assert_eq!(login.status, 200, "{login:?}");
        assert!(login.body.contains("name=\"code\""), "{}", login.body);
        assert_eq!(login.header("strict-transport-security"), None);
        let to_login = curl(&[&format!("{local}/notebooks/x.ipynb")]);
        assert_eq!(to_login.status, 302, "{to_login:?}");
        assert!(to_login.header("location").unwrap().starts_with("/_simpleotp/login"), "{to_login:?}");

        let code = serve.fresh_code().await;
        let signed_in =
            curl(&["-H", &format!("Origin: {local}"), "--data", &format!("code={code}&next=/"), &format!("{local}/_simpleotp/login")]);
        assert_eq!(signed_in.status, 303, "{signed_in:?}");
        let cookie = signed_in.header("set-cookie").unwrap();
        assert!(!cookie.starts_with("__Host-") && !cookie.contains("Secure"), "the plain cookie of this computer: {cookie}");
        let cookie = cookie.split(';').next().unwrap();
        let app = curl(&["-H", &format!("Cookie: {cookie}"), &format!("{local}/")]);
        assert_eq!(app.status, 200, "{app:?}");

        // The network side of the same port: TLS only, as before.
        let ca = ca_file(&serve);
        let over_tls = curl(&["--cacert", ca.to_str().unwrap(), &format!("https://{LAN_ADDRESS}:{port}/_simpleotp/login")]);
        assert_eq!(over_tls.status, 200, "{over_tls:?}");
        assert_eq!(curl(&[&format!("http://{LAN_ADDRESS}:{port}/_simpleotp/login")]).status, 301);
        assert!(try_curl(&["--cacert", ca.to_str().unwrap(), &format!("https://127.0.0.1:{port}/")]).is_err(), "loopback speaks no TLS");

        // A device on the network that guessed too often is told how to unlock from there (the
        // tray's QR code), not to run a command it cannot run (#21 point 5).
        let lan_login = format!("https://{LAN_ADDRESS}:{port}/_simpleotp/login");
        let origin = format!("Origin: https://{LAN_ADDRESS}:{port}");
        let mut locked = None;
        for _ in 0..30 {
            let wrong = curl(&["--cacert", ca.to_str().unwrap(), "-H", &origin, "--data", "code=000000&next=/", &lan_login]);
            if wrong.status == 429 {
                locked = Some(wrong);
                break;
            }
        }
        let locked = locked.expect("wrong codes from the network end in a lockout");
        assert!(locked.body.contains("scan the QR code it shows with this device's camera"), "{}", locked.body);
        assert!(!locked.body.contains("in a terminal"), "{}", locked.body);

        // `simpleotp unlock` gives the link for such a device too, with a QR code to scan; the
        // link opens there, over TLS, and lets this device sign in past its lockout.
        let unlock = std::process::Command::new(env!("CARGO_BIN_EXE_simpleotp"))
            .arg("unlock")
            .arg("--data-dir")
            .arg(&serve.data_dir)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&unlock.stdout);
        assert!(unlock.status.success(), "{printed}{}", String::from_utf8_lossy(&unlock.stderr));
        let (_, for_devices) = printed.split_once("On a phone or another device:\n").unwrap_or_else(|| panic!("{printed}"));
        let link = for_devices.lines().next().unwrap().trim();
        assert!(link.starts_with("https://") && link.contains(&format!(":{port}/_simpleotp/login?ticket=")), "{printed}");
        assert!(for_devices.contains('█') || for_devices.contains('▀'), "a QR code in the terminal:\n{printed}");
        let by_name = format!("{}:{port}:{LAN_ADDRESS}", machine_local_name());
        let opened = curl(&["--cacert", ca.to_str().unwrap(), "--resolve", &by_name, link]);
        assert_eq!(opened.status, 200, "{opened:?}");
        assert!(opened.body.contains("Unlock link accepted"), "{}", opened.body);
    });
}

/// The phone in one flow (#21 point 1): the CA page, opened over plain HTTP by the one QR code,
/// finds out by itself when the device trusts SimpleOTP's CA and then offers "Open LAN →"
/// (only the apps other devices reach), which leads over verified HTTPS to the login page and
/// the app. A Chromium that does not trust the CA keeps waiting (its check fails the TLS
/// handshake); one that trusts it through NSS, as a person's device would, gets through.
#[test]
fn the_ca_page_notices_the_device_trusts_the_ca_and_leads_to_the_app() {
    netns::run("https::the_ca_page_notices_the_device_trusts_the_ca_and_leads_to_the_app", || async {
        let mut serve = Serve::start().await;
        let local_name = machine_local_name();
        let port = serve.lan_port;
        let ca = ca_file(&serve);
        let page = format!("http://{local_name}:{port}/_simpleotp/ca");
        let shown = |browser: &fantoccini::Client, id: &'static str| {
            let browser = browser.clone();
            async move { browser.find(Locator::Id(id)).await.unwrap().is_displayed().await.unwrap() }
        };

        // Not trusted yet: the page says it is waiting, and goes on waiting.
        let untrusted_home = serve.dir.path().join("untrusted-home");
        std::fs::create_dir_all(&untrusted_home).unwrap();
        let driver = ChromeDriver::start(&untrusted_home).await;
        let browser = driver.session(&local_name, LAN_ADDRESS).await;
        browser.goto(&page).await.unwrap();
        browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#trust-waiting:not([hidden])")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await; // a few of its checks
        assert!(shown(&browser, "trust-waiting").await && !shown(&browser, "trust-done").await, "{}", browser.source().await.unwrap());
        browser.close().await.unwrap();
        drop(driver);

        // Trusted: the page notices, and its button opens the app over HTTPS, no second scan.
        let home = serve.dir.path().join("home");
        trust_in_nss(&home, &ca);
        let driver = ChromeDriver::start(&home).await;
        let browser = driver.session(&local_name, LAN_ADDRESS).await;
        browser.goto(&page).await.unwrap();
        let open = browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#trust-done:not([hidden]) a[data-port]"))
            .await
            .unwrap();
        assert_eq!(open.text().await.unwrap(), "Open LAN →");
        assert_eq!(open.attr("href").await.unwrap().as_deref(), Some(format!("https://{local_name}:{port}/").as_str()));
        let done_text = browser.find(Locator::Id("trust-done")).await.unwrap().text().await.unwrap();
        assert!(!done_text.contains("Local"), "an app on this computer only is not offered to other devices: {done_text}");
        assert!(!shown(&browser, "trust-waiting").await);
        if std::env::var_os("SIMPLEOTP_UPDATE_SCREENSHOTS").is_some() {
            browser.set_window_size(390, 844).await.unwrap();
            let png = browser.screenshot().await.unwrap();
            std::fs::write(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots/ca-page-phone-trusted.png"), png)
                .unwrap();
        }
        open.click().await.unwrap();
        let field = match browser.wait().at_most(Duration::from_secs(15)).for_element(Locator::Id("code")).await {
            Ok(field) => field,
            Err(e) => panic!("no login form ({e}) at {}:\n{}", browser.current_url().await.unwrap(), browser.source().await.unwrap()),
        };
        field.send_keys(&serve.fresh_code().await).await.unwrap();
        past_the_passkey_offer(&browser).await;
        assert_eq!(browser.current_url().await.unwrap().as_str(), format!("https://{local_name}:{port}/"));
        browser.close().await.unwrap();
    });
}

/// A CA key file other users can read is refused: `serve` with a network-facing app stops before
/// anything listens, and says what to do.
#[test]
fn a_ca_key_others_can_read_stops_the_start_with_what_to_do() {
    netns::run("https::a_ca_key_others_can_read_stops_the_start_with_what_to_do", || async {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        let store = simpleotp_engine::secret::SecretStore::file(&secret_file);
        store.store(&simpleotp_engine::totp::TotpSecret::generate(), false).unwrap();
        let port = free_port();
        let mut config = simpleotp_engine::config::Config::default();
        config.apps.push(simpleotp_engine::config::AppConfig::new(
            "LAN".parse().unwrap(),
            "http://127.0.0.1:9".parse().unwrap(),
            format!("0.0.0.0:{port}").parse().unwrap(),
        ));
        let config_path = dir.path().join("config.toml");
        config.save(&config_path).unwrap();
        let data_dir = dir.path().join("data");
        let common = |command: &mut std::process::Command| {
            command.arg("--config").arg(&config_path).arg("--data-dir").arg(&data_dir).arg("--secret-file").arg(&secret_file);
        };
        // `ca export` makes the CA, its key in a 0600 file beside the secret.
        let mut export = std::process::Command::new(env!("CARGO_BIN_EXE_simpleotp"));
        export.args(["ca", "export"]).arg(dir.path().join("exported.pem"));
        common(&mut export);
        let exported = export.output().unwrap();
        assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
        let key_file = ca_key_path(&secret_file, &data_dir);
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();

        let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_simpleotp"));
        serve.arg("serve");
        common(&mut serve);
        let mut child = serve.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("serve started with a CA key others can read");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(!status.success());
        assert!(stderr.contains("cannot serve the apps on the local network over HTTPS"), "{stderr}");
        assert!(stderr.contains(&format!("chmod 600 {}", key_file.display())), "{stderr}");
        assert!(std::net::TcpStream::connect((LAN_ADDRESS, port)).is_err(), "nothing listens");
    });
}

/// Where the CA key of a gateway with this secret file is kept.
fn ca_key_path(secret_file: &std::path::Path, data_dir: &std::path::Path) -> std::path::PathBuf {
    match simpleotp_engine::ca::CaStore::beside(&simpleotp_engine::secret::SecretStore::file(secret_file), data_dir) {
        simpleotp_engine::ca::CaStore::File { path, .. } => path,
        other => panic!("{other:?}"),
    }
}

/// HSTS through the real nginx: `Strict-Transport-Security` on HTTPS answers for the machine's
/// name (the login page, the redirect to it, the sign-in's redirect and the app's own pages),
/// never for an IP literal, never for `localhost` (it would cover the user's other local
/// servers) and never over plain HTTP.
#[test]
fn hsts_is_sent_for_names_over_https_only() {
    netns::run("https::hsts_is_sent_for_names_over_https_only", || async {
        let mut serve = Serve::start().await;
        let local_name = machine_local_name();
        let port = serve.lan_port;
        let ca = ca_file(&serve);
        let ca_arg = ca.to_str().unwrap();
        let by_name = format!("{local_name}:{port}:{LAN_ADDRESS}");
        let by_localhost = format!("localhost:{port}:{LAN_ADDRESS}");
        let named = |path: &str| curl(&["--cacert", ca_arg, "--resolve", &by_name, &format!("https://{local_name}:{port}{path}")]);
        let hsts = |reply: &Reply| reply.header("strict-transport-security");

        let login = named("/_simpleotp/login");
        assert_eq!((login.status, hsts(&login).as_deref()), (200, Some("max-age=604800")), "{login:?}");
        let to_login = named("/notebooks/x.ipynb");
        assert_eq!((to_login.status, hsts(&to_login).as_deref()), (302, Some("max-age=604800")), "{to_login:?}");

        // Not for an address, not for localhost, not over plain HTTP (the redirect and the CA page).
        let by_ip = curl(&["--cacert", ca_arg, &format!("https://{LAN_ADDRESS}:{port}/_simpleotp/login")]);
        assert_eq!((by_ip.status, hsts(&by_ip)), (200, None), "{by_ip:?}");
        let localhost = curl(&["--cacert", ca_arg, "--resolve", &by_localhost, &format!("https://localhost:{port}/_simpleotp/login")]);
        assert_eq!((localhost.status, hsts(&localhost)), (200, None), "{localhost:?}");
        for path in ["/notebooks/x.ipynb", "/_simpleotp/ca"] {
            let plain = curl(&["--resolve", &by_name, &format!("http://{local_name}:{port}{path}")]);
            assert!(plain.status == 301 || plain.status == 200, "{plain:?}");
            assert_eq!(hsts(&plain), None, "plain HTTP {path}: {plain:?}");
        }

        // Signed in by name: the sign-in's redirect and the app's own responses carry it too.
        let code = serve.fresh_code().await;
        let origin = format!("https://{local_name}:{port}");
        let signed_in = curl(&[
            "--cacert",
            ca_arg,
            "--resolve",
            &by_name,
            "-H",
            &format!("Origin: {origin}"),
            "--data",
            &format!("code={code}&next=/"),
            &format!("{origin}/_simpleotp/login"),
        ]);
        assert_eq!((signed_in.status, hsts(&signed_in).as_deref()), (303, Some("max-age=604800")), "{signed_in:?}");
        let cookie = signed_in.header("set-cookie").unwrap();
        let cookie = cookie.split(';').next().unwrap();
        let app = curl(&["--cacert", ca_arg, "--resolve", &by_name, "-H", &format!("Cookie: {cookie}"), &format!("{origin}/")]);
        assert_eq!((app.status, hsts(&app).as_deref()), (200, Some("max-age=604800")), "the app's page: {app:?}");
        assert_eq!(app.headers.matches("strict-transport-security").count() + app.headers.matches("Strict-Transport-Security").count(), 1);
    });
}

/// `simpleotp ca rotate` while `serve` runs with an app facing the network: the running gateway
/// rotates its own CA (the command says so), and the certificate nginx presents chains to the
/// new CA and no longer to the old one (openssl s_client + verify). The old key, still in the
/// gateway's memory before, signs nothing more.
#[test]
fn ca_rotate_reaches_the_running_gateway() {
    netns::run("https::ca_rotate_reaches_the_running_gateway", || async {
        let serve = Serve::start().await;
        let port = serve.lan_port;
        let ca = ca_file(&serve);
        let old_ca = serve.dir.path().join("old-ca.pem");
        std::fs::copy(&ca, &old_ca).unwrap();
        let before = presented_chain(LAN_ADDRESS, port, LAN_ADDRESS);
        openssl_verify(&old_ca, &before[0], &["-verify_ip", LAN_ADDRESS]).unwrap();

        let output = std::process::Command::new(env!("CARGO_BIN_EXE_simpleotp"))
            .args(["ca", "rotate", "--config"])
            .arg(&serve.config_path)
            .arg("--data-dir")
            .arg(&serve.data_dir)
            .arg("--secret-file")
            .arg(serve.dir.path().join("secret"))
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
        assert!(printed.contains("made a new SimpleOTP CA and now presents certificates from it"), "{printed}");
        let new_ca = std::fs::read_to_string(&ca).unwrap();
        assert_ne!(new_ca, std::fs::read_to_string(&old_ca).unwrap(), "the stored CA was not replaced");

        // nginx reloads gracefully: new connections meet the new leaf within a few seconds.
        let rotated = Instant::now();
        let leaf = loop {
            let chain = presented_chain(LAN_ADDRESS, port, LAN_ADDRESS);
            if chain.first().is_some_and(|leaf| openssl_verify(&ca, leaf, &["-verify_ip", LAN_ADDRESS]).is_ok()) {
                break chain[0].clone();
            }
            assert!(rotated.elapsed() < Duration::from_secs(10), "nginx still presents the old CA's leaf; log:\n{}", serve.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let old_says = openssl_verify(&old_ca, &leaf, &["-verify_ip", LAN_ADDRESS]).unwrap_err();
        assert!(old_says.contains("unable to get local issuer certificate") || old_says.contains("error"), "{old_says}");
        // The CA page offers the new CA at once.
        let download = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", &format!("http://{LAN_ADDRESS}:{port}/_simpleotp/ca.crt")])
            .output()
            .unwrap();
        assert_eq!(pem_body(&to_pem(&download.stdout)), pem_body(&new_ca), "the CA page offers the new CA");

        // And the watcher, which runs on, keeps issuing from the new CA: a new address's leaf
        // chains to it too.
        let second = "10.77.3.3";
        netns::ip(&["addr", "add", &format!("{second}/32"), "dev", "lo"]);
        wait_for_leaf_at(&ca, second, port, Duration::from_secs(40), || serve.log()).await;
    });
}

/// nginx's master and worker processes (the workers change with every reload).
fn nginx_pids(serve: &Serve) -> (String, String) {
    let master = std::fs::read_to_string(serve.data_dir.join("nginx/nginx.pid")).unwrap().trim().to_string();
    let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
    (master, children.trim().to_string())
}

/// `[lan] interfaces = ["lan0"]`: the leaf holds only lan0's addresses (and loopback), not those
/// of another interface (`other0`, standing for a VPN or a docker bridge) nor `lo`'s. A new
/// address on the other interface, or a public IPv6 address on the chosen one (the CA cannot
/// vouch for it), causes no new leaf and no reload (the leaf file and nginx's workers stay the
/// same); a new private address on lan0 causes one.
#[test]
fn only_the_chosen_interfaces_go_into_the_leaf_and_others_cause_no_reload() {
    netns::run("https::only_the_chosen_interfaces_go_into_the_leaf_and_others_cause_no_reload", || async {
        netns::ip(&["link", "add", "lan0", "type", "veth", "peer", "name", "other0"]);
        for link in ["lan0", "other0"] {
            netns::ip(&["link", "set", link, "up"]);
        }
        netns::ip(&["addr", "add", "10.77.5.1/24", "dev", "lan0"]);
        netns::ip(&["addr", "add", "10.77.6.1/24", "dev", "other0"]);
        let serve = Serve::start_with(|config| config.lan.interfaces = Some(vec!["lan0".parse().unwrap()])).await;
        let port = serve.lan_port;
        let ca = ca_file(&serve);
        let leaf = presented_chain("10.77.5.1", port, "10.77.5.1").remove(0);
        openssl_verify(&ca, &leaf, &["-verify_ip", "10.77.5.1"]).unwrap();
        openssl_verify(&ca, &leaf, &["-verify_ip", "127.0.0.1"]).unwrap();
        for hidden in ["10.77.6.1", LAN_ADDRESS] {
            assert!(openssl_verify(&ca, &leaf, &["-verify_ip", hidden]).is_err(), "the leaf discloses {hidden}");
        }
        let printed = serve.stdout();
        assert!(printed.contains(&format!("https://10.77.5.1:{port}/")) && !printed.contains("10.77.6.1"), "{printed}");

        let chain_file = serve.data_dir.join("nginx/tls-chain.pem");
        let chain_before = std::fs::read_to_string(&chain_file).unwrap();
        let pids_before = nginx_pids(&serve);
        assert!(!pids_before.1.is_empty(), "no nginx worker found");
        netns::ip(&["addr", "add", "10.77.6.2/24", "dev", "other0"]);
        netns::ip(&["-6", "addr", "add", "2001:db8:5::1/64", "dev", "lan0", "nodad"]);
        // Three polls of the watcher (every 2 s): none may reissue or reload.
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(std::fs::read_to_string(&chain_file).unwrap(), chain_before, "a new leaf for an address it cannot hold");
        assert_eq!(nginx_pids(&serve), pids_before, "nginx reloaded for an address that is not in the leaf");
        assert!(!serve.log().contains("nginx is reloading to present a new certificate"), "{}", serve.log());

        // A new private address on the chosen interface: one new leaf, one reload.
        netns::ip(&["addr", "add", "10.77.5.2/24", "dev", "lan0"]);
        wait_for_leaf_at(&ca, "10.77.5.2", port, Duration::from_secs(10), || serve.log()).await;
        assert_ne!(nginx_pids(&serve).1, pids_before.1, "the new leaf came with a reload");
        assert_eq!(serve.log().matches("nginx is reloading to present a new certificate").count(), 1, "{}", serve.log());
    });
}
