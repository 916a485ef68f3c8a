// The login page's only script, allowed by its hash in the page's CSP (pages.rs computes it from
// these bytes). The page works without it; this only saves a tap and makes a lockout readable:
// * the form submits itself once the field holds six digits (typed, pasted or filled in by the
//   phone), however they are spaced: the server ignores spaces and dashes;
// * during a lockout, the end is shown in this device's own time, the time left counts down,
//   and the form is enabled again when it is over (without a script, a <meta http-equiv=
//   "refresh"> inside <noscript> reloads the page then).
(function () {
  "use strict";
  var form = document.querySelector("form.login");
  var field = document.getElementById("code");
  if (!form || !field) {
    return;
  }

  var submitting = false;
  field.addEventListener("input", function () {
    var digits = field.value.replace(/\D/g, "");
    if (submitting || field.disabled || digits.length !== 6 || !field.checkValidity()) {
      return;
    }
    submitting = true;
    form.requestSubmit();
  });
  // Back from the answer page (bfcache): the field may be typed in again.
  window.addEventListener("pageshow", function () {
    submitting = false;
  });

  var left = document.getElementById("lockout-left");
  var end = document.getElementById("lockout-end");
  if (!left || !end) {
    return;
  }
  // Counted from what the server said is left, not from its clock: a phone whose clock is off
  // (a common reason for wrong codes) still waits the right time and shows an end time that
  // matches the clock it shows.
  var seconds = Number(left.getAttribute("data-seconds"));
  if (!(seconds > 0)) {
    return;
  }
  var deadline = performance.now() + seconds * 1000;
  var endsAt = new Date(Math.ceil((Date.now() + (seconds - 1) * 1000) / 60000) * 60000);
  var today = endsAt.toDateString() === new Date().toDateString();
  end.textContent = today
    ? endsAt.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })
    : endsAt.toLocaleString([], { weekday: "short", hour: "numeric", minute: "2-digit" });

  // The same words as the server's (pages.rs, format_duration): "45 s", "4 min 30 s", "2 h 5 min".
  function duration(total) {
    if (total < 60) {
      return total + " s";
    }
    if (total < 3600) {
      var m = Math.floor(total / 60);
      var s = total % 60;
      return s === 0 ? m + " min" : m + " min " + s + " s";
    }
    var mins = Math.ceil(total / 60);
    var h = Math.floor(mins / 60);
    var rest = mins % 60;
    return rest === 0 ? h + " h" : h + " h " + rest + " min";
  }

  var button = document.getElementById("submit");
  var message = document.getElementById("msg");
  function tick() {
    var ms = deadline - performance.now();
    if (ms <= 0) {
      // Over: the form works again, here, without a reload (a timed reload would take the
      // page away from whoever is reading it; only the no-script fallback reloads).
      field.disabled = false;
      button.disabled = false;
      field.removeAttribute("aria-invalid");
      message.className = "msg msg-info";
      message.textContent = "";
      var p = document.createElement("p");
      p.textContent = "You can sign in again: enter the newest code.";
      message.appendChild(p);
      field.focus();
      return;
    }
    // The page waits one second more than the lockout (see lockout_seconds in pages.rs), so
    // the server has surely lifted it; the countdown shows the lockout itself.
    left.textContent = duration(Math.max(1, Math.ceil(ms / 1000) - 1));
    setTimeout(tick, ms % 1000 || 1000);
  }
  tick();
})();
