// The CA page's only script, allowed by its hash in the page's CSP (pages/mod.rs computes it
// from these bytes). It finds out by itself when this device trusts SimpleOTP's certificate
// authority: every two seconds it fetches the trust check over HTTPS from this app's port. A
// device that does not trust the CA fails the TLS handshake, so the fetch fails; once it
// trusts it, the fetch gets through, and the page shows "Open Jupyter →" for each app (on this
// page's host name, at that app's port), so the phone needs no second scan. The answer is
// opaque (no-cors): getting one at all is the news. Without the script the page is its steps.
(function () {
  "use strict";
  var trust = document.getElementById("trust");
  if (!trust) {
    return;
  }
  var waiting = document.getElementById("trust-waiting");
  var done = document.getElementById("trust-done");
  var host = location.hostname;
  if (host.indexOf(":") !== -1 && host.charAt(0) !== "[") {
    host = "[" + host + "]";
  }
  var port = location.port ? ":" + location.port : "";
  var links = done.querySelectorAll("a[data-port]");
  for (var i = 0; i < links.length; i++) {
    links[i].href = "https://" + host + ":" + links[i].getAttribute("data-port") + "/";
  }

  function trusted() {
    waiting.hidden = true;
    done.hidden = false;
  }
  function check() {
    fetch("https://" + host + port + trust.getAttribute("data-check"), { mode: "no-cors", cache: "no-store", credentials: "omit" })
      .then(trusted, function () {
        waiting.hidden = false;
        setTimeout(check, 2000);
      });
  }
  check();
})();
