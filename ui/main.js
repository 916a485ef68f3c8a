// The SimpleOTP window. Plain ES module over `window.__TAURI__` (withGlobalTauri): every action
// is one command in src-tauri/src/commands.rs, and every error is the command's own message.
// The secret is only ever in the DOM of the screen showing it, and is cleared when it is left.

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const $ = (id) => document.getElementById(id);

function show(el, text) {
  el.textContent = text ?? '';
  el.hidden = !text;
}

function clear(...ids) {
  for (const id of ids) show($(id), '');
}

/** Runs a command; on failure shows its message in `errorEl` and returns undefined. */
async function call(command, args, errorEl) {
  if (errorEl) show(errorEl, '');
  try {
    return await invoke(command, args);
  } catch (message) {
    if (errorEl) show(errorEl, String(message));
    else console.error(command, message);
    return undefined;
  }
}

/** Disables a button while `work` runs (no double submits). */
async function busy(button, work) {
  button.disabled = true;
  try { return await work(); } finally { button.disabled = false; }
}

/** A destructive button asks "again to confirm" instead of a modal dialog. */
function confirmFirst(button, onConfirm) {
  const label = button.textContent;
  let armed = false;
  let timer;
  button.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      button.textContent = 'Click again to confirm';
      timer = setTimeout(() => { armed = false; button.textContent = label; }, 4000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    button.textContent = label;
    await busy(button, onConfirm);
  });
}

/** Copies `text`; the button says so for a moment. */
async function copyText(text, button, selectEl) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Older WebKitGTK: select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(selectEl);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand('copy');
  }
  const label = button.textContent;
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = label; }, 2000);
}

function qrDataUrl(svg) {
  return 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
}

function showSecret(view, imgEl, secretEl) {
  imgEl.src = qrDataUrl(view.qr_svg);
  secretEl.replaceChildren(...view.secret_groups.map((g) => {
    const span = document.createElement('span');
    span.textContent = g;
    return span;
  }));
}

function forgetSecret(imgEl, secretEl) {
  imgEl.removeAttribute('src');
  secretEl.replaceChildren();
}

function when(unix) {
  return new Date(unix * 1000).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

/** A wait as the login page and the tray's messages say it (src-tauri core::views::human_duration,
 * the engine's format_duration): "58 s", "4 min 58 s", "2 h 5 min"; rounded up, never "0 s". */
function duration(secs) {
  const s = Math.max(1, Math.ceil(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s / 60} min`;
  const mins = Math.ceil(s / 60);
  return mins % 60 ? `${Math.floor(mins / 60)} h ${mins % 60} min` : `${mins / 60} h`;
}

/** An age or a time left in the same units, to the largest one, rounded down (core::views::
 * short_duration): "45 s", "5 min", "12 h", "6 d". */
function shortDuration(secs) {
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** "2 min ago", "in 6 d" (or "just now"): how far `unix` is from `now`, both in seconds. */
function relativeTime(unix, now = Date.now() / 1000) {
  const diff = unix - now;
  if (Math.abs(diff) < 60) return diff < 0 ? 'just now' : 'in a moment';
  return diff < 0 ? `${shortDuration(-diff)} ago` : `in ${shortDuration(diff)}`;
}

/** A `<time>` that reads relative ("2 min ago"), with the exact time as its tooltip. */
function timeCell(unix, prefix = '') {
  const t = el('time', { textContent: prefix + relativeTime(unix), title: when(unix) });
  t.dateTime = new Date(unix * 1000).toISOString();
  return t;
}

/** "Save as a text file": the core writes the codes shown in `selector` to a new owner-only file
 * in the Downloads folder (a webview cannot download the page's own data) and says where. */
async function saveCodes(selector, button, savedEl) {
  const codes = [...document.querySelectorAll(selector)].map((li) => li.textContent);
  await busy(button, async () => {
    const path = await call('recovery_codes_save', { codes }, savedEl);
    if (path) show(savedEl, `Saved as ${path}. Only you can read it; print it or move the codes somewhere safe, then delete it.`);
  });
}

/** The address a browser came from, in the user's words: this computer's own addresses read as
 * "This computer". */
function clientName(ip) {
  if (ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1') return 'This computer';
  return ip;
}

// For the end-to-end test, which checks the wording the screens use.
window.simpleotpFormat = { relativeTime, clientName, duration, shortDuration };

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
}

// ---------------------------------------------------------------- wizard

let wizardSecretGroups = null;

function wizardStep(name) {
  for (const step of document.querySelectorAll('#wizard .step')) {
    step.hidden = step.dataset.step !== name;
  }
  if (name !== 'qr' && name !== 'confirm') {
    forgetSecret($('wizard-qr'), $('wizard-secret'));
    wizardSecretGroups = null;
  }
  const focus = document.querySelector(`#wizard .step[data-step="${name}"] input, #wizard .step[data-step="${name}"] button.primary`);
  focus?.focus();
  if (name === 'app') offerFreePort('wizard-app');
}

async function wizardShowQr() {
  const view = await call('wizard_begin', {}, null);
  if (!view) return;
  wizardSecretGroups = view.secret_groups;
  showSecret(view, $('wizard-qr'), $('wizard-secret'));
  $('wizard-issuer').textContent = view.issuer;
  $('wizard-account').textContent = view.account;
  wizardStep('qr');
}

function setUpWizard() {
  $('wizard-start').addEventListener('click', wizardShowQr);
  for (const button of document.querySelectorAll('#wizard [data-goto]')) {
    button.addEventListener('click', () => {
      if (button.dataset.goto === 'qr') wizardShowQr();
      else if (button.dataset.goto === 'explain') { call('wizard_cancel', {}); wizardStep('explain'); }
      else wizardStep(button.dataset.goto);
    });
  }
  $('wizard-copy').addEventListener('click', () => copyText((wizardSecretGroups ?? []).join(''), $('wizard-copy'), $('wizard-secret')));
  $('wizard-confirm-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy($('wizard-confirm'), async () => {
      const status = await call('wizard_confirm', { code: $('wizard-code').value }, $('wizard-confirm-error'));
      if (!status) return;
      $('wizard-code').value = '';
      // The secret is stored; if protection could not start (say, nginx is missing), say so
      // here: the app can still be added, and Status has Retry.
      show($('wizard-app-error'), status.state === 'error' ? `Protection could not start yet: ${status.message}` : '');
      wizardStep('app');
    });
  });
  setUpAppForm('wizard-app');
  $('wizard-app-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy($('wizard-add-app'), async () => {
      const saved = await saveApp('wizard-app', 'app_add', { app: appInput('wizard-app') });
      if (!saved) return;
      $('wizard-url').textContent = saved.app.url;
      $('wizard-url').href = saved.app.url;
      $('wizard-url').dataset.name = saved.app.name;
      show($('wizard-own-sign-in'), saved.own_sign_in);
      show($('wizard-warning'), saved.warning);
      show($('wizard-exposure'), saved.exposure);
      $('wizard-done-text').hidden = false;
      $('wizard-open').textContent = `Open ${saved.app.name}`;
      $('wizard-open').hidden = false;
      $('wizard-copy-link').hidden = false;
      $('wizard-finish').classList.remove('primary');
      wizardDoneStep();
    });
  });
  $('wizard-skip').addEventListener('click', () => {
    $('wizard-done-text').textContent = 'Protection is on. Add apps any time under Apps.';
    $('wizard-url').textContent = '';
    $('wizard-open').hidden = true;
    $('wizard-copy-link').hidden = true;
    $('wizard-finish').classList.add('primary');
    clear('wizard-warning', 'wizard-exposure', 'wizard-own-sign-in');
    wizardDoneStep();
  });
  // Launch at login, offered pre-checked on the last screen and applied as shown: a tray app that
  // does not start at login leaves the protected addresses dead after the next restart.
  const wizardDoneStep = async () => {
    wizardStep('done');
    applyWizardAutostart();
    // The recovery codes made at setup: shown here once (the core hands them out only once).
    const recovery = await call('wizard_recovery_codes', {});
    if (recovery) {
      $('wizard-recovery-codes').replaceChildren(...recovery.codes.map((c) => el('li', { className: 'fingerprint', textContent: c })));
      $('wizard-recovery').hidden = false;
    }
  };
  const applyWizardAutostart = () => call('launch_at_login_set', { on: $('wizard-autostart').checked }, $('wizard-autostart-error'));
  $('wizard-autostart').addEventListener('change', applyWizardAutostart);
  $('wizard-recovery-save').addEventListener('click', () => saveCodes('#wizard-recovery-codes li', $('wizard-recovery-save'), $('wizard-recovery-saved')));
  $('wizard-recovery-copy').addEventListener('click', () => {
    const codes = [...document.querySelectorAll('#wizard-recovery-codes li')].map((li) => li.textContent);
    copyText(`SimpleOTP recovery codes (each works once):\n${codes.join('\n')}\n`, $('wizard-recovery-copy'), $('wizard-recovery-codes'));
  });
  $('wizard-copy-link').addEventListener('click', () => copyText($('wizard-url').href, $('wizard-copy-link'), $('wizard-url')));
  const openWizardApp = (event) => {
    event.preventDefault();
    call('open_app', { name: $('wizard-url').dataset.name });
  };
  $('wizard-url').addEventListener('click', openWizardApp);
  $('wizard-open').addEventListener('click', openWizardApp);
  // Leaving the wizard takes the recovery codes off the page: they were shown once.
  const leaveWizard = (to) => {
    $('wizard-recovery-codes').replaceChildren();
    $('wizard-recovery').hidden = true;
    wizardDone = true;
    selectSection(to);
    render();
  };
  $('wizard-finish').addEventListener('click', () => leaveWizard('status'));
  // Offered at the end: the phone is why most people want this at all.
  $('wizard-add-phone').addEventListener('click', () => leaveWizard('devices'));
}

// ---------------------------------------------------------------- the app forms (wizard and Apps)
// Both forms (`wizard-app-…` and `apps-…`) work alike: a free port offered up front, the
// address it makes shown as the port is typed, a Test of the upstream before saving, and a
// taken port answered with a one-click "Use 8082".

const validPort = (port) => Number.isInteger(port) && port >= 1 && port <= 65535;

/** "Open it at: http://127.0.0.1:[port]/": the core says the scheme and host (HTTPS with LAN access). */
async function previewAddress(prefix) {
  const typed = Number($(`${prefix}-port`).value);
  const port = validPort(typed) ? typed : 8081;
  const url = await call('app_address', { port }, null);
  if (!url) return;
  $(`${prefix}-address-prefix`).textContent = url.slice(0, url.length - `${port}/`.length);
  $(`${prefix}-address`).textContent = validPort(typed)
    ? `The new, protected address of the app: ${url}` : 'Type a port between 1 and 65535.';
}

/** Fills the port with one nothing uses (8081 if free, else the next free one). */
async function offerFreePort(prefix) {
  const port = await call('app_free_port', {}, null);
  // The answer can arrive after the person chose an app to edit: never overwrite its port.
  if (prefix === 'apps' && editing) return;
  if (port) $(`${prefix}-port`).value = port;
  await previewAddress(prefix);
}

function clearAppHints(prefix) {
  clear(`${prefix}-test-result`, `${prefix}-exposure`, `${prefix}-error`);
  $(`${prefix}-offer`).hidden = true;
}

/** The Test button: does the app answer at "Where does it run now?" (nothing is saved). */
async function testUpstream(prefix) {
  const result = $(`${prefix}-test-result`);
  await busy($(`${prefix}-test`), async () => {
    result.className = 'test-result';
    show(result, 'Testing…');
    show($(`${prefix}-exposure`), '');
    try {
      const check = await invoke('app_test', { app: appInput(prefix) });
      result.classList.add(check.answers ? 'ok' : 'bad');
      show(result, check.message);
      show($(`${prefix}-exposure`), check.exposure);
    } catch (message) {
      result.classList.add('bad');
      show(result, String(message));
    }
  });
}

/** Saves an app; when its port is taken, the refusal comes with a free one, offered as "Use 8082". */
async function saveApp(prefix, command, args) {
  show($(`${prefix}-error`), '');
  $(`${prefix}-offer`).hidden = true;
  try {
    return await invoke(command, args);
  } catch (refused) {
    show($(`${prefix}-error`), refused?.message ?? String(refused));
    if (refused?.use_port) {
      const use = $(`${prefix}-use-port`);
      use.textContent = `Use ${refused.use_port}`;
      use.dataset.port = refused.use_port;
      $(`${prefix}-offer`).hidden = false;
    }
    return undefined;
  }
}

function setUpAppForm(prefix) {
  $(`${prefix}-port`).addEventListener('input', () => previewAddress(prefix));
  $(`${prefix}-upstream`).addEventListener('input', () => clear(`${prefix}-test-result`, `${prefix}-exposure`));
  $(`${prefix}-test`).addEventListener('click', () => testUpstream(prefix));
  // One click: take the free port and save with it.
  $(`${prefix}-use-port`).addEventListener('click', async () => {
    $(`${prefix}-port`).value = $(`${prefix}-use-port`).dataset.port;
    $(`${prefix}-offer`).hidden = true;
    await previewAddress(prefix);
    $(`${prefix}-form`).requestSubmit();
  });
}

// ---------------------------------------------------------------- main window

let section = 'status';
/** "Add a phone": its progress timer, and null until the flow starts (each time Other devices
 * opens), then 'watching', then 'done'. */
let phoneTimer = null;
let phoneFlow = null;
/** False while the wizard runs (from "needs setup" until its last step's Done). */
let wizardDone = true;
let editing = null; // name of the app being edited

function appInput(prefix) {
  const ownAddress = $(`${prefix}-own-address`);
  // The wizard has no such box: its app goes where the others are (null).
  const otherDevices = $(`${prefix}-other-devices`);
  return {
    name: $(`${prefix}-name`).value,
    upstream: $(`${prefix}-upstream`).value,
    port: Number($(`${prefix}-port`).value) || 0,
    own_address: ownAddress ? ownAddress.checked : false,
    other_devices: otherDevices ? otherDevices.checked : null,
  };
}

function selectSection(name) {
  // "Add a phone" starts afresh each time Other devices opens.
  stopWatchingPhone();
  phoneFlow = null;
  section = name;
  for (const button of document.querySelectorAll('.nav')) {
    if (button.dataset.section === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  for (const s of document.querySelectorAll('.section')) s.hidden = s.id !== `section-${name}`;
  if (name !== 'security') {
    hideSecurityQr();
    // New recovery codes are shown once: gone from the page once Security is left.
    $('security-recovery-codes').replaceChildren();
    $('security-recovery-panel').hidden = true;
  }
  if (name === 'settings') { renderSettings(); renderUpdates(); }
  if (name === 'apps' && !editing && !$('apps-port').value) offerFreePort('apps');
  // Whether an app is reachable without a code, checked again as the screens that show it open
  // (a change comes back as state-changed).
  if (name === 'status' || name === 'apps') call('reachable_check', {});
  refreshSection();
}

const STATE_TEXT = {
  running: 'Protection is on',
  starting: 'Starting…',
  paused: 'Apps are offline: their protected addresses do not answer',
  error: 'Protection is off because of a problem',
  needs_setup: 'Not set up yet',
};

async function renderStatus(status) {
  $('status-dot').className = `dot ${status.state}`;
  $('status-text').textContent = STATE_TEXT[status.state] ?? status.state;
  show($('status-message'), status.message);
  const apps = status.apps.length === 1 ? '1 app' : `${status.apps.length} apps`;
  const sessions = status.sessions === 0 ? 'nobody signed in' : status.sessions === 1 ? '1 session' : `${status.sessions} sessions`;
  $('status-detail').textContent = status.state === 'running' ? `${apps} protected · ${sessions}` : '';
  $('status-warnings').replaceChildren(...status.warnings.map((w) => el('li', { textContent: w })));
  $('status-autostart').hidden = status.launch_at_login || status.state === 'needs_setup';
  $('status-update').hidden = !status.update_available;
  $('status-update-text').textContent = status.update_available ? `SimpleOTP ${status.update_available} is available.` : '';
  $('status-retry').hidden = status.state !== 'error';
  $('status-pause').textContent = status.state === 'paused' ? 'Bring apps back online' : 'Take apps offline';
  $('status-pause').dataset.offline = String(status.state === 'paused');
  $('status-pause').disabled = !['running', 'paused', 'starting'].includes(status.state);
  $('status-reachable').replaceChildren(...status.apps.filter((app) => app.reachable_without_code).map(reachableNotice));
  $('status-apps').replaceChildren(...(status.apps.length ? status.apps.map((app) => el('li', {},
    el('div', {}, el('div', { className: 'name' }, app.name, ...reachableBadge(app)), el('div', { className: 'detail', textContent: app.url })),
    openButton(app.name))) : [emptyApps()]));
}

/** The empty list of apps (Status and Apps): what to do, and the button that does it. */
function emptyApps() {
  return el('li', { className: 'empty' },
    el('p', { className: 'muted', textContent: 'No apps are protected yet. Add the first one: SimpleOTP then asks for a code before it opens.' }),
    addAppButton());
}

/** The badge beside an app's name while other devices open it without a code (none otherwise). */
function reachableBadge(app) {
  return app.reachable_without_code ? [el('span', { className: 'badge', textContent: 'Reachable without a code' })] : [];
}

/** The port of "192.168.1.20:8888" or "[fd00::2]:8888". */
function portOf(address) {
  return address.slice(address.lastIndexOf(':') + 1);
}

/** Status: which address and port other devices use to skip the code, what to do, and Check again. */
function reachableNotice(app) {
  const at = app.reachable_without_code;
  const port = portOf(at);
  const again = el('button', { textContent: 'Check again', type: 'button', className: 'reachable-check' });
  again.addEventListener('click', () => busy(again, async () => {
    const status = await call('reachable_check', {});
    if (status) renderStatus(status);
  }));
  const li = el('li', {},
    el('div', { className: 'badge', textContent: 'Reachable without a code' }),
    el('p', { textContent: `${app.name} itself answers at ${at}: its own port, at this computer's network address. Anyone on your network can open it there without a code. To fix it, start ${app.name} for this computer only (on 127.0.0.1; Jupyter: --ip=127.0.0.1), or block port ${port} in the firewall.` }),
    el('p', { className: 'small', textContent: 'Checked every 30 seconds: this goes away by itself once it is fixed. A firewall rule may not show here, since this computer reaches itself past it.' }),
    again);
  li.dataset.name = app.name;
  return li;
}

function openButton(name) {
  const b = el('button', { textContent: 'Open', type: 'button' });
  b.setAttribute('aria-label', `Open ${name} in the browser`);
  b.addEventListener('click', () => call('open_app', { name }));
  return b;
}

/** Whether some app faces other devices, as last rendered (a new app follows them). */
let appsFaceOthers = false;

function renderApps(status) {
  // A new app is offered to other devices when the others are, until the box is touched.
  const otherDevices = $('apps-other-devices');
  appsFaceOthers = status.apps.some((app) => app.other_devices);
  if (!editing && !otherDevices.dataset.touched) otherDevices.checked = appsFaceOthers;
  $('apps-list').replaceChildren(...(status.apps.length ? status.apps.map((app) => {
    const edit = el('button', { textContent: 'Edit', type: 'button', className: 'edit' });
    edit.addEventListener('click', () => startEdit(app));
    const remove = el('button', { textContent: 'Remove', type: 'button', className: 'danger remove' });
    confirmFirst(remove, async () => {
      if (await call('app_remove', { name: app.name }, $('apps-error'))) refreshSection();
    });
    const reachable = app.reachable_without_code
      ? [el('div', { className: 'detail reachable', textContent: `Other devices open it at ${app.reachable_without_code} without a code (see Status).` })]
      : [];
    const li = el('li', {},
      el('div', {}, el('div', { className: 'name' }, app.name, ...reachableBadge(app)),
        el('div', { className: 'detail', textContent: `${app.url} → ${app.upstream}` }), ...reachable),
      el('div', { className: 'buttons' }, openButton(app.name), edit, remove));
    li.dataset.name = app.name;
    return li;
  }) : [emptyApps()]));
}

function startEdit(app) {
  editing = app.name;
  $('apps-form-h').textContent = `Edit ${app.name}`;
  $('apps-name').value = app.name;
  $('apps-upstream').value = app.upstream;
  $('apps-port').value = app.port;
  $('apps-own-address').checked = app.own_address;
  $('apps-other-devices').checked = app.other_devices;
  $('apps-save').textContent = 'Save changes';
  $('apps-cancel').hidden = false;
  clearAppHints('apps');
  previewAddress('apps');
  $('apps-name').focus();
}

function stopEdit() {
  editing = null;
  $('apps-form').reset();
  delete $('apps-other-devices').dataset.touched;
  // The reset unticks the box: back to following the others at once, not at the next render.
  $('apps-other-devices').checked = appsFaceOthers;
  $('apps-form-h').textContent = 'Add an app';
  $('apps-save').textContent = 'Add app';
  $('apps-cancel').hidden = true;
  clearAppHints('apps');
  offerFreePort('apps');
}

/** One app on "Other devices": its QR code, its address to copy, and its other addresses. */
function deviceApp(app) {
  const img = el('img', { className: 'qr', src: qrDataUrl(app.qr_svg), alt: `QR code of ${app.name}'s address` });
  const address = el('code', { className: 'address', textContent: app.url });
  const copy = el('button', { type: 'button', className: 'copy', textContent: 'Copy' });
  copy.setAttribute('aria-label', `Copy ${app.name}'s address`);
  copy.addEventListener('click', () => copyText(app.url, copy, address));
  const parts = [el('div', { className: 'name', textContent: app.name }), el('div', { className: 'copy-row' }, address, copy)];
  if (app.other_urls.length) {
    parts.push(el('div', { className: 'muted small', textContent: 'Or, on devices that do not find the name, at:' }),
      el('ul', { className: 'also' }, ...app.other_urls.map((u) => el('li', {}, el('code', { textContent: u })))));
  }
  const li = el('li', {}, img, el('div', {}, ...parts));
  li.dataset.name = app.name;
  return li;
}

function trustText(trust) {
  if (trust.system && trust.browsers !== false) return 'This computer trusts SimpleOTP\'s certificate.';
  if (trust.system) return 'The system trusts SimpleOTP\'s certificate; Chromium and Firefox do not yet.';
  if (trust.browsers) return 'Chromium and Firefox trust SimpleOTP\'s certificate; the system does not yet.';
  return 'This computer does not trust SimpleOTP\'s certificate yet: its browsers warn on the apps\' HTTPS addresses.';
}

function renderDevicesView(view) {
  // Windows Firewall may block other devices (its prompt was declined): said first, with the way out.
  $('devices-firewall').hidden = !view.firewall_blocked;
  $('devices-firewall-text').textContent = view.firewall_blocked ?? '';
  // Step 1, the network switch, inline; steps 2 and 3 follow once it is on.
  $('devices-off').hidden = view.lan;
  $('devices-lan-done').hidden = !view.lan;
  $('devices-on').hidden = !view.lan;
  $('phone-step-scan-off').hidden = view.lan;
  $('devices-apps').replaceChildren(...(view.apps.length ? view.apps.map(deviceApp)
    : [el('li', { className: 'muted', textContent: 'No apps yet. Add one under Apps.' })]));
  const ca = view.ca;
  const page = view.lan ? ca?.page_url : null;
  $('devices-ca').hidden = !page;
  $('phone-step-progress').hidden = !page;
  if (page) watchPhone();
  if (page) {
    $('devices-ca-qr').src = qrDataUrl(ca.page_qr_svg);
    $('devices-ca-url').textContent = page;
    $('devices-ca-fingerprint').textContent = ca.fingerprint;
    $('devices-ca-sha1').textContent = ca.sha1_thumbprint.match(/.{1,4}/g).join(' ');
  }
  show($('devices-ca-missing'), view.ca_problem ?? (page || !view.lan ? '' : ca
    ? 'Add an app to get the page that sets the phone up.'
    : 'SimpleOTP makes its certificate when protection runs with other devices allowed. Wait a moment, or check Status.'));
  $('devices-trust-part').hidden = !ca;
  if (ca) {
    $('devices-trust-state').textContent = trustText(ca.trust) + (ca.trust.problem ? ` (${ca.trust.problem})` : '');
    $('devices-trust-name').textContent = `Listed as “${ca.common_name}”.`;
    $('devices-trust-earlier').hidden = !ca.trust.earlier_trusted;
    $('devices-trust-add').hidden = ca.trust.system && ca.trust.browsers !== false && !ca.trust.earlier_trusted;
    $('devices-trust-remove').hidden = !(ca.trust.system || ca.trust.browsers || ca.trust.earlier_trusted);
  }
}

async function renderDevices() {
  const view = await call('devices', {}, $('devices-error'));
  if (view) renderDevicesView(view);
}

/** "Add a phone", step 3: what the phone did, as the gateway saw it (it opened the page, it
 * trusts SimpleOTP, it signed in), asked every two seconds while Other devices shows the code.
 * Progress counts from the moment the code was shown. */
const PHONE_STEPS = ['waiting', 'opened_page', 'trusts_ca', 'signed_in'];
function watchPhone() {
  if (phoneFlow) return;
  phoneFlow = 'watching';
  const render = (progress) => {
    if (!progress) return;
    const reached = PHONE_STEPS.indexOf(progress.step);
    for (const li of document.querySelectorAll('#phone-progress li')) {
      const index = PHONE_STEPS.indexOf(li.dataset.step);
      li.className = index <= reached ? 'done' : index === reached + 1 ? 'current' : '';
    }
    const app = progress.app ?? 'your app';
    $('phone-progress-text').textContent = {
      waiting: 'Waiting for the phone… Scan the code above with its camera.',
      opened_page: 'The phone opened the page. Now follow its steps to trust SimpleOTP.',
      trusts_ca: 'The phone trusts SimpleOTP. On the phone, tap Open, then type a code from the authenticator app.',
      signed_in: `The phone is signed in to ${app}. Done.`,
    }[progress.step];
    if (progress.step === 'signed_in') { stopWatchingPhone(); phoneFlow = 'done'; }
  };
  const tick = async () => {
    if (section !== 'devices') { stopWatchingPhone(); phoneFlow = null; return; }
    render(await call('phone_progress', {}));
  };
  phoneTimer = setInterval(tick, 2000);
  call('phone_flow_start', {}).then(render);
}
function stopWatchingPhone() {
  clearInterval(phoneTimer);
  phoneTimer = null;
}

/** Step 1 in place: other devices allowed with the Settings' own command, everything else as it is. */
async function letOtherDevicesIn() {
  const got = await call('settings_get', {}, $('devices-lan-error'));
  if (!got) return;
  const saved = await call('settings_set', { settings: { ...got.settings, lan: true } }, $('devices-lan-error'));
  if (saved) renderDevices();
}

/** Trust or Remove: the OS asks the person, which can take a while. */
async function changeTrust(button, command) {
  $('devices-trust-wait').hidden = false;
  try {
    await busy(button, async () => {
      // Its own error line: the refreshes of the screen (on every state change) leave it alone.
      const view = await call(command, {}, $('devices-trust-error'));
      if (view) renderDevicesView(view);
      else renderDevices();
    });
  } finally {
    $('devices-trust-wait').hidden = true;
  }
}

/** "Ask Windows again": Windows' administrator prompt once more. */
async function retryFirewall(button) {
  $('devices-firewall-wait').hidden = false;
  try {
    await busy(button, async () => {
      const view = await call('firewall_retry', {}, $('devices-error'));
      if (view) renderDevicesView(view);
    });
  } finally {
    $('devices-firewall-wait').hidden = true;
  }
}

/** Sessions, read like devices: "Chrome on Android · Pixel" (how it signed in), the app, "idle 12 h · ends in 6 d" (the core
 * words them), most recent first, this computer marked, each with its own Sign out. */
async function renderSessions() {
  const sessions = await call('sessions_list', {}, $('sessions-error'));
  if (!sessions) return;
  $('sessions-empty').hidden = sessions.length > 0;
  $('sessions-revoke-all').hidden = sessions.length === 0;
  if (!sessions.length) renderSessionsEmpty();
  $('sessions-list').replaceChildren(...sessions.map((s, i) => {
    // Its accessible name is its text ("Sign out"); the row's device and app describe it.
    const signOut = el('button', { textContent: 'Sign out', type: 'button', className: 'danger sign-out' });
    signOut.setAttribute('aria-describedby', `session-${i}-device session-${i}-detail`);
    signOut.addEventListener('click', () => busy(signOut, async () => {
      await call('session_revoke', { id: s.id }, $('sessions-error'));
      renderSessions();
    }));
    const where = s.this_computer
      ? el('span', { className: 'badge here', textContent: 'This computer' })
      : el('span', { className: 'from', textContent: ` · ${clientName(s.client_ip)}` });
    const li = el('li', { className: 'session' },
      el('div', {},
        el('div', { className: 'name device', id: `session-${i}-device` },
          el('span', { className: 'what', textContent: s.device, title: s.user_agent }),
          s.signed_in_with ? el('span', { className: 'with', textContent: ` · ${s.signed_in_with}`, title: `Signed in with ${s.signed_in_with}` }) : '',
          ' ', where),
        el('div', { className: 'detail', id: `session-${i}-detail` },
          el('span', { className: 'app', textContent: s.app }), ' · ',
          el('span', { className: 'idle', textContent: s.idle, title: `Last active ${when(s.last_seen)}` }), ' · ',
          el('span', { className: 'ends', textContent: s.ends, title: `Ends ${when(s.expires_at)}; signed in ${when(s.created_at)}` }))),
      el('div', { className: 'buttons' }, signOut));
    li.dataset.id = s.id;
    return li;
  }));
}

/** Nobody signed in: a button per app that opens it (signing in fills the list), or, with no app
 * yet, the way to add one. */
async function renderSessionsEmpty() {
  const status = await call('status', {});
  if (!status) return;
  const apps = status.apps.slice(0, 3);
  $('sessions-empty-text').textContent = apps.length
    ? 'Nobody is signed in. Open an app and type a code: this browser shows up here.'
    : 'Nobody is signed in. Add an app first: whoever signs in to it shows up here.';
  $('sessions-empty-actions').replaceChildren(...(apps.length
    ? apps.map((app, i) => {
      const b = el('button', { textContent: `Open ${app.name}`, type: 'button', className: i === 0 ? 'primary' : '' });
      b.dataset.name = app.name;
      b.addEventListener('click', () => call('open_app', { name: app.name }, $('sessions-error')));
      return b;
    })
    : [addAppButton()]));
}

/** "Add an app": Apps, with the form's first field focused. */
function addAppButton(label = 'Add an app') {
  const b = el('button', { textContent: label, type: 'button', className: 'primary add-app' });
  b.addEventListener('click', () => {
    selectSection('apps');
    $('apps-name').focus();
  });
  return b;
}

/** When the lockout shown in the banner ends (ms since the epoch), for its live countdown. */
let lockoutEndsAt = 0;

function tickLockout() {
  const left = (lockoutEndsAt - Date.now()) / 1000;
  const countdown = $('security-countdown');
  if (!lockoutEndsAt) { countdown.hidden = true; return; }
  if (left <= 0) {
    lockoutEndsAt = 0;
    countdown.hidden = true;
    if (section === 'security') renderSecurity();
    return;
  }
  countdown.hidden = false;
  countdown.textContent = `Sign-ins work again in ${duration(left)}`;
}
setInterval(tickLockout, 1000);

/** Wrong codes per address, newest address first: [{ ip, count, last }]. */
function groupFailures(failures) {
  const groups = new Map();
  for (const f of failures) {
    const g = groups.get(f.ip) ?? { ip: f.ip, count: 0, last: 0 };
    g.count += 1;
    g.last = Math.max(g.last, f.at);
    groups.set(f.ip, g);
  }
  return [...groups.values()].sort((a, b) => b.last - a.last);
}

/** Security's passkeys: name, where each works, added and last used; Rename in place, Remove after
 * a second click. */
async function renderPasskeys() {
  const passkeys = await call('passkeys_list', {});
  if (!passkeys) return;
  const list = $('security-passkeys');
  if (list.querySelector('input.rename')) return; // a rename is being typed: keep it
  list.replaceChildren(...(passkeys.length
    ? passkeys.map((p) => {
      const rename = el('button', { type: 'button', className: 'small', textContent: 'Rename' });
      const remove = el('button', { type: 'button', className: 'small danger', textContent: 'Remove' });
      const name = el('span', { className: 'name', textContent: p.name });
      const li = el('li', { className: 'passkey' },
        el('div', {},
          el('div', { className: 'name' }, name, el('span', { className: 'where', textContent: ` · ${p.works_at}` })),
          el('div', { className: 'detail' }, timeCell(p.created_at, 'added '), ' · ',
            p.last_used_at ? timeCell(p.last_used_at, 'used ') : 'never used')),
        el('div', { className: 'buttons' }, rename, remove));
      li.dataset.id = p.id;
      li.dataset.name = p.name;
      rename.addEventListener('click', () => {
        const field = el('input', { className: 'rename', value: p.name, maxLength: 60, ariaLabel: `New name for ${p.name}` });
        const save = el('button', { type: 'button', className: 'small', textContent: 'Save' });
        name.replaceWith(field);
        rename.replaceWith(save);
        field.focus();
        const done = async () => {
          const renamed = await call('passkey_rename', { id: p.id, name: field.value }, $('security-passkey-error'));
          if (renamed) { field.remove(); await renderPasskeys(); }
        };
        save.addEventListener('click', done);
        field.addEventListener('keydown', (e) => { if (e.key === 'Enter') done(); });
      });
      confirmFirst(remove, async () => {
        if (await call('passkey_remove', { id: p.id }, $('security-passkey-error'))) await renderPasskeys();
      });
      return li;
    })
    : [el('li', { className: 'muted empty', textContent: 'No passkeys yet. Add one below, then choose “Sign in with a passkey” on the login page.' })]));
}

async function renderSecurity() {
  const sec = await call('security_status', {});
  if (!sec) return;
  await renderPasskeys();
  $('security-recovery-state').textContent = sec.recovery_left == null
    ? 'None yet. Make ten one-time codes for the day your phone is lost, and keep them away from it.'
    : `${sec.recovery_left} of 10 left, made ${when(sec.recovery_made_at)}. Each works once on the login page, under “Use a recovery code”.`;
  renderAuthenticators(sec.authenticators);
  const lockout = $('security-lockout');
  let wait = 0;
  if (!sec.running) {
    lockout.textContent = 'Protection is not running.';
  } else if (sec.everyone_locked_for_secs) {
    lockout.textContent = 'Too many wrong codes: every sign-in is locked for now.';
    wait = sec.everyone_locked_for_secs;
  } else if (sec.locked_clients.length) {
    lockout.textContent = 'Locked out after wrong codes: ' + sec.locked_clients.map((c) => clientName(c.ip)).join(', ') + '.';
    wait = Math.max(...sec.locked_clients.map((c) => c.secs));
  } else {
    lockout.textContent = 'No lockouts. Sign-ins work as usual.';
  }
  const locked = wait > 0;
  lockoutEndsAt = locked ? Date.now() + wait * 1000 : 0;
  tickLockout();
  $('security-unlock').hidden = !locked;
  $('security-banner').classList.toggle('locked', locked);
  const groups = groupFailures(sec.recent_failures);
  $('security-failures').replaceChildren(...(groups.length
    ? groups.slice(0, 20).map((g) => {
      const li = el('li', { className: 'failure' },
        el('span', { className: 'who' }, el('span', { className: 'name', textContent: clientName(g.ip) }),
          g.ip !== clientName(g.ip) ? el('span', { className: 'detail', textContent: ` (${g.ip})` }) : ''),
        el('span', { className: 'count', textContent: g.count === 1 ? '1 wrong code' : `${g.count} wrong codes` }),
        el('span', { className: 'detail' }, 'latest ', timeCell(g.last)));
      li.dataset.ip = g.ip;
      li.dataset.count = g.count;
      return li;
    })
    : [el('li', { className: 'muted empty', textContent: 'No wrong codes lately. A wrong code typed on a sign-in page shows here, with where it came from.' })]));
}

/** Security's authenticator apps: name, "added 3 d ago · last code 5 min ago", and Remove (asks
 * again to confirm; not offered for the only one, which the core refuses to remove too). */
function renderAuthenticators(list) {
  $('security-authenticators').replaceChildren(...list.map((a, i) => {
    const parts = [a.added, a.last_used].filter(Boolean).join(' · ');
    const buttons = el('div', { className: 'buttons' });
    if (list.length > 1) {
      const remove = el('button', { textContent: 'Remove', type: 'button', className: 'danger remove' });
      remove.setAttribute('aria-describedby', `authenticator-${i}-name`);
      confirmFirst(remove, async () => {
        clear('security-add-done');
        if (await call('authenticator_remove', { id: a.id }, $('security-authenticators-error')) !== undefined) {
          show($('security-add-done'), `${a.name} was removed: its codes no longer sign in. You can delete its entry in that app.`);
        }
        renderSecurity();
      });
      buttons.append(remove);
    }
    const li = el('li', { className: 'authenticator' },
      el('div', {},
        el('div', { className: 'name', id: `authenticator-${i}-name`, textContent: a.name }),
        el('div', { className: 'detail', textContent: parts })),
      buttons);
    li.dataset.id = a.id;
    return li;
  }));
}

function hideSecurityQr() {
  $('security-add-panel').hidden = true;
  forgetSecret($('security-add-img'), $('security-add-secret'));
  $('security-replace-panel').hidden = true;
  forgetSecret($('security-replace-img'), $('security-replace-secret'));
}

/** Selects `secs` in a duration choice; a value set elsewhere (the config file) is kept as an
 * extra choice rather than silently changed. */
function chooseDuration(select, secs) {
  select.querySelector('option.custom')?.remove();
  if (![...select.options].some((o) => Number(o.value) === secs)) {
    const hours = secs / 3600;
    const label = hours >= 1 ? `${+hours.toFixed(2)} hour${hours === 1 ? '' : 's'}` : `${Math.round(secs / 60)} minutes`;
    select.append(el('option', { className: 'custom', value: String(secs), textContent: label }));
  }
  select.value = String(secs);
}

async function renderSettings() {
  const got = await call('settings_get', {}, null);
  if (!got) return;
  const s = got.settings;
  chooseDuration($('settings-lifetime'), s.lifetime_secs);
  chooseDuration($('settings-idle'), s.idle_timeout_secs);
  $(s.lan ? 'settings-lan' : 'settings-local').checked = true;
  $('settings-lan-note').hidden = !s.lan;
  $('settings-autostart').checked = s.launch_at_login;
  $('settings-updates-auto').checked = s.check_updates;
  $('settings-nginx').value = s.nginx_path ?? '';
  $('settings-nginx-found').textContent = got.nginx;
  settingsInterfaces = s.interfaces ?? null;
  renderInterfaces(got.network_interfaces);
}

/** The chosen interfaces (`[lan] interfaces`), or null for the default. */
let settingsInterfaces = null;

/** One checkbox per interface: name, addresses, "default route"; checked when it faces the
 * network. With the default chosen they show what the default picks and cannot be changed. */
function renderInterfaces(interfaces) {
  $('settings-interfaces').hidden = !$('settings-lan').checked;
  $('settings-interfaces-default').checked = settingsInterfaces === null;
  const rows = interfaces.map((i) => {
    const box = el('input', { type: 'checkbox', checked: i.facing, disabled: settingsInterfaces === null });
    box.dataset.interface = i.name;
    box.addEventListener('change', () => {
      settingsInterfaces = [...document.querySelectorAll('#settings-interfaces-list input')].filter((b) => b.checked).map((b) => b.dataset.interface);
      applySettings('interfaces');
    });
    const detail = [i.addresses.join(', ') || 'no address', i.default_route ? 'default route' : ''].filter(Boolean).join(' · ');
    return el('label', { className: 'choice' }, box, ` ${i.name} `, el('span', { className: 'muted small', textContent: detail }));
  });
  if (rows.length === 0) rows.push(el('p', { className: 'muted small', textContent: 'No network interface with an address was found.' }));
  $('settings-interfaces-list').replaceChildren(...rows);
}

function settingsInput() {
  return {
    lifetime_secs: Number($('settings-lifetime').value),
    idle_timeout_secs: Number($('settings-idle').value),
    launch_at_login: $('settings-autostart').checked,
    lan: $('settings-lan').checked,
    nginx_path: $('settings-nginx').value.trim() || null,
    interfaces: settingsInterfaces,
    check_updates: $('settings-updates-auto').checked,
  };
}

/** Changes apply one after the other, in the order they were made. */
let settingsQueue = Promise.resolve();

/** Applies the settings after a change of `field` (the prefix of its "saved" and error ids). */
function applySettings(field) {
  settingsQueue = settingsQueue.then(async () => {
    const saved = $(`settings-${field}-saved`);
    saved.textContent = 'Saving…';
    const done = await call('settings_set', { settings: settingsInput() }, $(`settings-${field}-error`));
    if (!done) {
      saved.textContent = '';
      return;
    }
    $('settings-warnings').replaceChildren(...done.warnings.map((w) => el('li', { textContent: w })));
    $('settings-nginx-found').textContent = done.nginx;
    settingsInterfaces = done.settings.interfaces ?? null;
    renderInterfaces(done.network_interfaces);
    saved.textContent = 'Saved';
    setTimeout(() => { if (saved.textContent === 'Saved') saved.textContent = ''; }, 3000);
  });
  return settingsQueue;
}

function setUpMain() {
  for (const button of document.querySelectorAll('.nav')) {
    button.addEventListener('click', () => selectSection(button.dataset.section));
  }
  // Arrow keys move between sections, like a native sidebar.
  $('main').querySelector('.sidebar').addEventListener('keydown', (event) => {
    if (!['ArrowDown', 'ArrowUp'].includes(event.key)) return;
    const navs = [...document.querySelectorAll('.nav')];
    const i = navs.indexOf(document.activeElement);
    if (i < 0) return;
    const next = navs[(i + (event.key === 'ArrowDown' ? 1 : navs.length - 1)) % navs.length];
    next.focus();
    selectSection(next.dataset.section);
    event.preventDefault();
  });

  $('status-retry').addEventListener('click', () => busy($('status-retry'), async () => {
    await call('retry', {}, null);
    render();
  }));
  $('status-pause').addEventListener('click', () => busy($('status-pause'), async () => {
    const paused = $('status-pause').dataset.offline !== 'true';
    await call('set_paused', { paused }, null);
    render();
  }));

  setUpAppForm('apps');
  $('apps-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clear('apps-warning');
    await busy($('apps-save'), async () => {
      const saved = editing
        ? await saveApp('apps', 'app_edit', { original: editing, app: appInput('apps') })
        : await saveApp('apps', 'app_add', { app: appInput('apps') });
      if (!saved) return;
      stopEdit();
      show($('apps-warning'), [saved.warning, saved.exposure].filter(Boolean).join(' '));
      render();
    });
  });
  $('apps-cancel').addEventListener('click', stopEdit);

  $('devices-to-settings').addEventListener('click', () => selectSection('settings'));
  $('apps-other-devices').addEventListener('change', () => { $('apps-other-devices').dataset.touched = '1'; });
  $('devices-lan-on').addEventListener('click', () => busy($('devices-lan-on'), letOtherDevicesIn));
  $('devices-ca-copy').addEventListener('click', () => copyText($('devices-ca-url').textContent, $('devices-ca-copy'), $('devices-ca-url')));
  $('devices-trust-add').addEventListener('click', () => changeTrust($('devices-trust-add'), 'ca_trust'));
  $('devices-firewall-retry').addEventListener('click', () => retryFirewall($('devices-firewall-retry')));
  confirmFirst($('devices-trust-remove'), () => changeTrust($('devices-trust-remove'), 'ca_untrust'));

  confirmFirst($('sessions-revoke-all'), async () => {
    await call('sessions_revoke_all', {}, $('sessions-error'));
    renderSessions();
  });

  $('security-unlock').addEventListener('click', async () => {
    showUnlocked(await call('security_unlock', {}, $('security-unlock-error')));
  });
  // Unlock sign-ins in the tray menu unlocked already; its links are shown here, once.
  const takeTrayUnlock = async () => {
    const unlocked = await call('security_take_tray_unlock', {});
    if (!unlocked) return;
    selectSection('security');
    showUnlocked(unlocked);
  };
  listen('tray-unlocked', takeTrayUnlock);
  takeTrayUnlock();
  function showUnlocked(unlocked) {
    renderSecurity();
    if (!unlocked) return;
    // The shared budget is not refilled (that would give a guesser more tries too): the owner
    // signs in through a one-time link instead, opened from here.
    $('security-unlock-text').textContent = unlocked.links.length
      ? `Lockouts of single addresses are lifted. To sign in now, open a link below within ${duration(unlocked.expires_in_secs)}: it works once, for up to ${unlocked.attempts} codes, even while sign-ins are locked.`
      : 'Lockouts of single addresses are lifted. Add an app to get a one-time sign-in link.';
    $('security-unlock-links').replaceChildren(...unlocked.links.map((link) => {
      const button = el('button', { textContent: `Sign in to ${link.app}` });
      button.addEventListener('click', () => call('open_unlock_link', { url: link.url }, $('security-unlock-error')));
      // Also as text, to paste into another browser on this computer.
      const parts = [button, el('code', { textContent: link.url })];
      // A locked-out phone has no tray: it scans the same one-time link at the network address.
      if (link.other_device_qr_svg) {
        parts.push(el('figure', { className: 'unlock-qr' },
          el('img', { className: 'qr', src: qrDataUrl(link.other_device_qr_svg), alt: `QR code of the one-time sign-in link to ${link.app} for a phone` }),
          el('figcaption', { textContent: `On a phone or another device: scan this with its camera to sign in to ${link.app} there.` })));
      }
      return el('div', { className: 'unlock-link' }, ...parts);
    }));
    $('security-unlock-panel').hidden = false;
  }
  $('security-add-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clear('security-add-done');
    await busy($('security-add-begin'), async () => {
      const view = await call('authenticator_add_begin',
        { name: $('security-add-name').value, currentCode: $('security-add-current').value }, $('security-add-error'));
      $('security-add-current').value = '';
      renderSecurity();
      if (!view) return;
      showSecret(view, $('security-add-img'), $('security-add-secret'));
      $('security-add-panel').hidden = false;
      $('security-add-code').focus();
    });
  });
  $('security-add-confirm-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy($('security-add-confirm'), async () => {
      const added = await call('authenticator_add_confirm', { code: $('security-add-code').value }, $('security-add-error'));
      $('security-add-code').value = '';
      if (!added) return;
      hideSecurityQr();
      $('security-add-name').value = '';
      show($('security-add-done'), `${added.name} was added: its codes sign in from now on, like those of your other apps.`);
      renderSecurity();
    });
  });
  $('security-add-cancel').addEventListener('click', () => { call('wizard_cancel', {}); hideSecurityQr(); });
  // Recovery codes: behind a current code too (whoever sees them can sign in ten times), shown
  // once, then gone from the page.
  $('security-recovery-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy($('security-recovery-new'), async () => {
      const view = await call('recovery_codes_new', { code: $('security-recovery-current').value }, $('security-recovery-error'));
      $('security-recovery-current').value = '';
      renderSecurity();
      if (!view) return;
      $('security-recovery-codes').replaceChildren(...view.codes.map((c) => el('li', { className: 'fingerprint', textContent: c })));
      $('security-recovery-panel').hidden = false;
    });
  });
  $('security-recovery-copy').addEventListener('click', () => {
    const codes = [...document.querySelectorAll('#security-recovery-codes li')].map((li) => li.textContent);
    copyText(`SimpleOTP recovery codes (each works once):\n${codes.join('\n')}\n`, $('security-recovery-copy'), $('security-recovery-codes'));
  });
  $('security-recovery-save').addEventListener('click', () => saveCodes('#security-recovery-codes li', $('security-recovery-save'), $('security-recovery-saved')));
  $('security-passkey-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy($('security-passkey-add'), async () => {
      const link = await call('passkey_link', { code: $('security-passkey-current').value }, $('security-passkey-error'));
      $('security-passkey-current').value = '';
      if (!link) return;
      $('security-passkey-link').textContent = link.url;
      $('security-passkey-phone').hidden = !link.other_device_qr_svg;
      if (link.other_device_qr_svg) $('security-passkey-qr').src = qrDataUrl(link.other_device_qr_svg);
      $('security-passkey-panel').hidden = false;
      await call('open_passkey_link', { url: link.url }, $('security-passkey-error'));
    });
  });
  $('security-passkey-open').addEventListener('click', () => call('open_passkey_link', { url: $('security-passkey-link').textContent }, $('security-passkey-error')));
  $('security-passkey-done').addEventListener('click', () => {
    $('security-passkey-panel').hidden = true;
    $('security-passkey-link').textContent = '';
    $('security-passkey-qr').removeAttribute('src');
  });
  $('security-recovery-done').addEventListener('click', () => {
    $('security-recovery-codes').replaceChildren();
    $('security-recovery-panel').hidden = true;
  });
  // The current code of the old secret comes first (checked like "Show QR code", wrong codes
  // count toward a lockout); only then is a new secret made and shown.
  confirmFirst($('security-replace'), async () => {
    clear('security-replace-done');
    const view = await call('secret_replace_begin', { currentCode: $('security-replace-current').value }, $('security-replace-error'));
    $('security-replace-current').value = '';
    renderSecurity();
    if (!view) return;
    showSecret(view, $('security-replace-img'), $('security-replace-secret'));
    $('security-replace-panel').hidden = false;
    $('security-replace-code').focus();
  });
  // Enter in the current-code field acts like the button (which asks to click again).
  $('security-replace-begin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    $('security-replace').click();
  });
  $('security-replace-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const signedOut = await call('secret_replace_confirm', { code: $('security-replace-code').value }, $('security-replace-error'));
    $('security-replace-code').value = '';
    if (signedOut === undefined) return;
    hideSecurityQr();
    show($('security-replace-done'), `The new setup key is in use. ${signedOut === 0 ? 'Nobody was signed in.' : signedOut === 1 ? '1 session was signed out.' : `${signedOut} sessions were signed out.`}`);
  });
  $('security-replace-cancel').addEventListener('click', () => { call('wizard_cancel', {}); hideSecurityQr(); });

  for (const radio of document.querySelectorAll('input[name=listen]')) {
    radio.addEventListener('change', () => {
      $('settings-lan-note').hidden = !$('settings-lan').checked;
      $('settings-interfaces').hidden = !$('settings-lan').checked;
      applySettings('listen');
    });
  }
  $('settings-lifetime').addEventListener('change', () => applySettings('lifetime'));
  $('settings-idle').addEventListener('change', () => applySettings('idle'));
  $('settings-autostart').addEventListener('change', () => applySettings('autostart'));
  $('settings-interfaces-default').addEventListener('change', () => {
    // Leaving the default starts from what it picks now, so nothing changes until a box does.
    settingsInterfaces = $('settings-interfaces-default').checked
      ? null
      : [...document.querySelectorAll('#settings-interfaces-list input:checked')].map((b) => b.dataset.interface);
    applySettings('interfaces');
  });
  // The path applies when the field is left or Enter is pressed, not at every keystroke.
  $('settings-nginx').addEventListener('change', () => applySettings('nginx'));
  $('settings-form').addEventListener('submit', (event) => event.preventDefault());
  $('settings-diagnostics').addEventListener('click', () => busy($('settings-diagnostics'), async () => {
    const text = await call('diagnostics', {}, $('settings-help-error'));
    if (text === undefined) return;
    // Shown as well: the user sees what is copied (and can select it if the clipboard fails).
    show($('settings-diagnostics-text'), text);
    await copyText(text, $('settings-diagnostics'), $('settings-diagnostics-text'));
  }));
  $('settings-config-folder').addEventListener('click', () => call('open_config_folder', {}, $('settings-help-error')));
}

async function refreshSection() {
  const status = await call('status', {});
  if (!status) return;
  if (section === 'status') renderStatus(status);
  if (section === 'apps') renderApps(status);
  if (section === 'sessions') renderSessions();
  if (section === 'devices') renderDevices();
  if (section === 'security') renderSecurity();
  if (section === 'settings') renderUpdates();
  // Settings are not re-read on every change: that would overwrite what the user is typing.
}

/** Settings › Updates: the last check in one line, a newer release with its notes, and why it
 * cannot be installed from here when it cannot. Never a dialog: a failed check is this line. */
async function renderUpdates() {
  const u = await call('updates_get', {});
  if (!u) return;
  $('settings-updates-auto').checked = u.automatic;
  const from = u.source ? ` (from ${u.source})` : '';
  const status = u.checking ? 'Checking for updates…'
    : u.last_checked ? `SimpleOTP ${u.current_version}. Last checked ${when(u.last_checked)} — ${u.last_result}${from}.`
    : `SimpleOTP ${u.current_version}. Not checked yet${u.automatic ? ': the first check is within a minute of SimpleOTP starting' : ''}${from}.`;
  $('updates-status').textContent = status;
  $('updates-check').disabled = u.checking || Boolean(u.installing);
  const available = u.available;
  $('updates-available').hidden = !available;
  if (available) {
    $('updates-available-h').textContent = `SimpleOTP ${available.version} is available`;
    show($('updates-notes'), available.notes || 'No release notes were published with it.');
    show($('updates-manual'), available.cannot_install ? `This copy cannot install it itself: ${available.cannot_install}. Download it from the releases page instead.` : '');
    // While the confirmation is open, its own button is the one to press.
    $('updates-install').hidden = Boolean(available.cannot_install) || !$('updates-confirm').hidden;
    $('updates-install-note').hidden = Boolean(available.cannot_install);
    $('updates-releases').hidden = !available.cannot_install;
    $('updates-install').disabled = Boolean(u.installing);
    $('updates-confirm-text').textContent = `Install SimpleOTP ${available.version} now? SimpleOTP restarts; protected apps pause for a few seconds and everyone stays signed in.`;
  }
  show($('updates-progress'), u.installing);
  if (u.installing) $('updates-confirm').hidden = true;
  show($('updates-problem'), u.problem);
}

/** The tray's "Update to x.y.z…" (or the Status notice): Settings, scrolled to Updates. */
function showUpdates() {
  selectSection('settings');
  $('settings-updates').scrollIntoView({ block: 'start' });
}

function setUpAutostart() {
  $('status-autostart-on').addEventListener('click', () => busy($('status-autostart-on'), async () => {
    await call('launch_at_login_set', { on: true }, $('status-autostart-error'));
    refreshSection();
  }));
}

function setUpUpdates() {
  $('settings-updates-auto').addEventListener('change', () => applySettings('updates'));
  $('updates-check').addEventListener('click', () => busy($('updates-check'), async () => {
    $('updates-status').textContent = 'Checking for updates…';
    await call('updates_check_now', {}, $('updates-problem'));
    renderUpdates();
  }));
  // Installing is asked once, here, with what it does; the system may then ask for a password.
  $('updates-install').addEventListener('click', () => {
    $('updates-confirm').hidden = false;
    $('updates-install').hidden = true;
    $('updates-confirm-yes').focus();
  });
  $('updates-confirm-no').addEventListener('click', () => {
    $('updates-confirm').hidden = true;
    $('updates-install').hidden = false;
    $('updates-install').focus();
  });
  $('updates-confirm-yes').addEventListener('click', () => busy($('updates-confirm-yes'), async () => {
    $('updates-confirm').hidden = true;
    // Returns only if it failed (the app restarts otherwise); the reason is in updates-problem.
    await call('update_install', {}, null);
    renderUpdates();
  }));
  $('updates-releases').addEventListener('click', () => call('open_releases_page', {}, $('updates-problem')));
  $('status-update-show').addEventListener('click', showUpdates);
  listen('show-updates', showUpdates);
  // The tray's "⚠ Jupyter is reachable without a code": Status says where and what to do.
  listen('show-status', () => { if (wizardDone) selectSection('status'); });
  call('updates_take_focus', {}).then((focus) => { if (focus) showUpdates(); });
}

/** Shows the wizard while setup is unfinished, else the main window with the current section. */
/** How the window is reached again once closed: from the tray, or (a desktop without one, such
 * as stock GNOME) by running SimpleOTP again. */
function reachText(status) {
  return status.tray_available
    ? 'SimpleOTP keeps running in the system tray. Closing this window does not turn protection off.'
    : 'This desktop shows no tray icons, so SimpleOTP keeps running in the background without one. Closing this window does not turn protection off; to open it again, start SimpleOTP again from the app menu.';
}

async function render() {
  const status = await call('status', {});
  if (!status) return;
  for (const id of ['wizard-reach', 'status-reach']) $(id).textContent = reachText(status);
  if (status.state === 'needs_setup' && wizardDone) {
    wizardDone = false;
    wizardStep('explain');
  }
  $('wizard').hidden = wizardDone;
  $('main').hidden = !wizardDone;
  document.body.dataset.view = wizardDone ? 'main' : 'wizard';
  if (wizardDone) refreshSection();
}

setUpWizard();
setUpMain();
selectSection('status');
setUpUpdates();
setUpAutostart();
render();
listen('state-changed', () => {
  if (wizardDone) render(); // the wizard drives itself
});
// "Last seen" changes without an event (every request touches it): refresh while visible.
setInterval(() => {
  if (wizardDone && section === 'sessions' && !document.hidden) renderSessions();
}, 10000);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && !$('security-add-panel').hidden) { call('wizard_cancel', {}); hideSecurityQr(); }
});
