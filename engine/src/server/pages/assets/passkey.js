// Passkeys on the login page ("Sign in with a passkey", and the field's autofill where the
// browser offers it) and on the page that adds one. Allowed by its hash in the pages' CSP, like
// login.js; it talks only to this origin (connect-src 'self'). Without it, or in a browser
// without WebAuthn, the buttons stay hidden and codes work as always.
//
// The server's options are webauthn-rs's JSON: binary fields as base64url strings, which the
// browser wants as ArrayBuffers; the answers go back the other way.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) {
    var skip = document.getElementById("passkey-skip-unsupported");
    if (skip) {
      location.replace(skip.getAttribute("href"));
    }
    return;
  }

  function toBuffer(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) {
      raw += String.fromCharCode(bytes[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeOptions(options) {
    var key = options.publicKey;
    key.challenge = toBuffer(key.challenge);
    if (key.user) {
      key.user.id = toBuffer(key.user.id);
    }
    ["excludeCredentials", "allowCredentials"].forEach(function (list) {
      (key[list] || []).forEach(function (c) {
        c.id = toBuffer(c.id);
      });
    });
    return options;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) {
          throw new Error(answer.error || "SimpleOTP answered " + response.status);
        }
        return answer;
      });
    });
  }

  function say(element, text, isError) {
    element.className = isError ? "msg msg-error" : "msg msg-info";
    element.setAttribute("role", isError ? "alert" : "status");
    element.textContent = text;
    element.hidden = false;
  }

  // A prompt the person closed is not an error worth shouting about.
  function cancelled(error) {
    return error && (error.name === "NotAllowedError" || error.name === "AbortError");
  }

  // --- Signing in -------------------------------------------------------------------------
  var signIn = document.getElementById("passkey-signin");
  if (signIn) {
    var signInMsg = document.getElementById("passkey-msg");
    var next = signIn.getAttribute("data-next");
    var waiting = null;

    var finishSignIn = function (ceremony, credential) {
      var r = credential.response;
      return post(signIn.getAttribute("data-finish"), {
        ceremony: ceremony,
        next: next,
        credential: {
          id: credential.id,
          rawId: toText(credential.rawId),
          type: credential.type,
          response: {
            authenticatorData: toText(r.authenticatorData),
            clientDataJSON: toText(r.clientDataJSON),
            signature: toText(r.signature),
            userHandle: toText(r.userHandle),
          },
          extensions: credential.getClientExtensionResults(),
        },
      }).then(function (answer) {
        location.assign(answer.redirect);
      });
    };

    var ask = function (mediation) {
      return post(signIn.getAttribute("data-start"), {}).then(function (started) {
        var options = decodeOptions(started.options);
        if (mediation) {
          waiting = new AbortController();
          options.mediation = mediation;
          options.signal = waiting.signal;
        }
        return navigator.credentials.get(options).then(function (credential) {
          return finishSignIn(started.ceremony, credential);
        });
      });
    };

    signIn.hidden = false;
    signIn.addEventListener("click", function () {
      if (waiting) {
        waiting.abort();
        waiting = null;
      }
      signIn.disabled = true;
      ask(null)
        .catch(function (error) {
          if (!cancelled(error)) {
            say(signInMsg, error.message || String(error), true);
          }
        })
        .then(function () {
          signIn.disabled = false;
        });
    });

    // The code field offers the passkey itself where the browser can (conditional mediation).
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (available && signIn.hasAttribute("data-autofill")) {
          ask("conditional").catch(function (error) {
            if (!cancelled(error)) {
              say(signInMsg, error.message || String(error), true);
            }
          });
        }
      });
    }
  }

  // --- Adding one -------------------------------------------------------------------------
  var add = document.getElementById("passkey-add");
  if (add) {
    var addMsg = document.getElementById("passkey-msg");
    var nameField = document.getElementById("passkey-name");
    var done = document.getElementById("passkey-done");
    document.querySelectorAll(".needs-webauthn").forEach(function (element) {
      element.hidden = false;
    });
    add.addEventListener("click", function () {
      if (!nameField.checkValidity()) {
        nameField.reportValidity();
        return;
      }
      add.disabled = true;
      post(add.getAttribute("data-start"), { link: add.getAttribute("data-link") })
        .then(function (started) {
          return navigator.credentials.create(decodeOptions(started.options)).then(function (credential) {
            var r = credential.response;
            return post(add.getAttribute("data-finish"), {
              ceremony: started.ceremony,
              name: nameField.value,
              credential: {
                id: credential.id,
                rawId: toText(credential.rawId),
                type: credential.type,
                response: {
                  attestationObject: toText(r.attestationObject),
                  clientDataJSON: toText(r.clientDataJSON),
                  transports: r.getTransports ? r.getTransports() : undefined,
                },
                extensions: credential.getClientExtensionResults(),
              },
            });
          });
        })
        .then(function (answer) {
          document.getElementById("passkey-form").hidden = true;
          addMsg.hidden = true;
          document.getElementById("passkey-done-name").textContent = answer.name;
          done.hidden = false;
          document.getElementById("passkey-continue").focus();
        })
        .catch(function (error) {
          add.disabled = false;
          if (cancelled(error)) {
            say(addMsg, "No passkey was made (the prompt was closed). Try again, or skip this.", false);
          } else {
            say(addMsg, error.message || String(error), true);
          }
        });
    });
  }
})();
