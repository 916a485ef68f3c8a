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

/** "Chrome 156 on Linux" from a User-Agent header; the full header stays in the tooltip. */
function describeBrowser(ua) {
  if (!ua) return 'unknown';
  const browsers = [['Edg/', 'Edge'], ['OPR/', 'Opera'], ['Firefox/', 'Firefox'], ['HeadlessChrome/', 'Headless Chrome'],
    ['Chrome/', 'Chrome'], ['Version/', 'Safari'], ['curl/', 'curl']];
  const systems = [['Android', 'Android'], ['iPhone', 'iPhone'], ['iPad', 'iPad'], ['Mac OS X', 'macOS'],
    ['Windows', 'Windows'], ['CrOS', 'ChromeOS'], ['Linux', 'Linux']];
  const browser = browsers.find(([key]) => ua.includes(key));
  if (!browser) return ua.length > 40 ? ua.slice(0, 40) + '…' : ua;
  const version = ua.split(browser[0])[1]?.match(/^\d+/)?.[0];
  const system = systems.find(([key]) => ua.includes(key));
  return `${browser[1]}${version ? ' ' + version : ''}${system ? ' on ' + system[1] : ''}`;
}

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
  $('wizard-app-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy($('wizard-add-app'), async () => {
      const saved = await call('app_add', { app: appInput('wizard-app') }, $('wizard-app-error'));
      if (!saved) return;
      $('wizard-url').textContent = saved.app.url;
      $('wizard-url').href = saved.app.url;
      $('wizard-url').dataset.name = saved.app.name;
      show($('wizard-warning'), saved.warning);
      $('wizard-done-text').hidden = false;
      $('wizard-open').hidden = false;
      wizardStep('done');
    });
  });
  $('wizard-skip').addEventListener('click', () => {
    $('wizard-done-text').textContent = 'Protection is on. Add apps any time under Apps.';
    $('wizard-url').textContent = '';
    $('wizard-open').hidden = true;
    show($('wizard-warning'), '');
    wizardStep('done');
  });
  const openWizardApp = (event) => {
    event.preventDefault();
    call('open_app', { name: $('wizard-url').dataset.name });
  };
  $('wizard-url').addEventListener('click', openWizardApp);
  $('wizard-open').addEventListener('click', openWizardApp);
  $('wizard-finish').addEventListener('click', () => { wizardDone = true; selectSection('status'); render(); });
}

// ---------------------------------------------------------------- main window

let section = 'status';
/** False while the wizard runs (from "needs setup" until its last step's Done). */
let wizardDone = true;
let editing = null; // name of the app being edited

function appInput(prefix) {
  return {
    name: $(`${prefix}-name`).value,
    upstream: $(`${prefix}-upstream`).value,
    port: Number($(`${prefix}-port`).value) || 0,
  };
}

function selectSection(name) {
  section = name;
  for (const button of document.querySelectorAll('.nav')) {
    if (button.dataset.section === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  for (const s of document.querySelectorAll('.section')) s.hidden = s.id !== `section-${name}`;
  if (name !== 'security') hideSecurityQr();
  if (name === 'settings') renderSettings();
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
  const sessions = status.sessions === 0 ? 'nobody signed in' : status.sessions === 1 ? '1 browser signed in' : `${status.sessions} browsers signed in`;
  $('status-detail').textContent = status.state === 'running' ? `${apps} protected · ${sessions}` : '';
  $('status-warnings').replaceChildren(...status.warnings.map((w) => el('li', { textContent: w })));
  $('status-retry').hidden = status.state !== 'error';
  $('status-pause').textContent = status.state === 'paused' ? 'Bring apps back online' : 'Take apps offline';
  $('status-pause').dataset.offline = String(status.state === 'paused');
  $('status-pause').disabled = !['running', 'paused', 'starting'].includes(status.state);
  $('status-apps').replaceChildren(...(status.apps.length ? status.apps.map((app) => el('li', {},
    el('div', {}, el('div', { className: 'name', textContent: app.name }), el('div', { className: 'detail', textContent: app.url })),
    openButton(app.name))) : [el('li', { className: 'muted', textContent: 'No apps yet. Add one under Apps.' })]));
}

function openButton(name) {
  const b = el('button', { textContent: 'Open', type: 'button' });
  b.setAttribute('aria-label', `Open ${name} in the browser`);
  b.addEventListener('click', () => call('open_app', { name }));
  return b;
}

function renderApps(status) {
  $('apps-list').replaceChildren(...(status.apps.length ? status.apps.map((app) => {
    const edit = el('button', { textContent: 'Edit', type: 'button', className: 'edit' });
    edit.addEventListener('click', () => startEdit(app));
    const remove = el('button', { textContent: 'Remove', type: 'button', className: 'danger remove' });
    confirmFirst(remove, async () => {
      if (await call('app_remove', { name: app.name }, $('apps-error'))) refreshSection();
    });
    const li = el('li', {},
      el('div', {}, el('div', { className: 'name', textContent: app.name }),
        el('div', { className: 'detail', textContent: `${app.url} → ${app.upstream}` })),
      el('div', { className: 'buttons' }, openButton(app.name), edit, remove));
    li.dataset.name = app.name;
    return li;
  }) : [el('li', { className: 'muted', textContent: 'No apps yet.' })]));
}

function startEdit(app) {
  editing = app.name;
  $('apps-form-h').textContent = `Edit ${app.name}`;
  $('apps-name').value = app.name;
  $('apps-upstream').value = app.upstream;
  $('apps-port').value = app.port;
  $('apps-save').textContent = 'Save changes';
  $('apps-cancel').hidden = false;
  $('apps-name').focus();
}

function stopEdit() {
  editing = null;
  $('apps-form').reset();
  $('apps-form-h').textContent = 'Add an app';
  $('apps-save').textContent = 'Add app';
  $('apps-cancel').hidden = true;
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
  if (trust.system && trust.browsers !== false) return 'This computer trusts SimpleOTP\'s certificate authority.';
  if (trust.system) return 'The system trusts SimpleOTP\'s certificate authority; Chromium and Firefox do not yet.';
  if (trust.browsers) return 'Chromium and Firefox trust SimpleOTP\'s certificate authority; the system does not yet.';
  return 'This computer does not trust SimpleOTP\'s certificate authority yet: its browsers warn on the apps\' HTTPS addresses.';
}

function renderDevicesView(view) {
  $('devices-off').hidden = view.lan;
  $('devices-on').hidden = !view.lan;
  $('devices-apps').replaceChildren(...(view.apps.length ? view.apps.map(deviceApp)
    : [el('li', { className: 'muted', textContent: 'No apps yet. Add one under Apps.' })]));
  const ca = view.ca;
  const page = ca?.page_url;
  $('devices-ca').hidden = !page;
  if (page) {
    $('devices-ca-qr').src = qrDataUrl(ca.page_qr_svg);
    $('devices-ca-url').textContent = page;
    $('devices-ca-fingerprint').textContent = ca.fingerprint;
  }
  show($('devices-ca-missing'), view.ca_problem ?? (page ? '' : ca
    ? 'Add an app to get the page that offers the certificate.'
    : 'SimpleOTP makes its certificate authority when protection runs with other devices allowed. Wait a moment, or check Status.'));
  $('devices-trust-part').hidden = !ca;
  if (ca) {
    $('devices-trust-state').textContent = trustText(ca.trust) + (ca.trust.problem ? ` (${ca.trust.problem})` : '');
    $('devices-trust-name').textContent = `Listed as “${ca.common_name}”.`;
    $('devices-trust-add').hidden = ca.trust.system && ca.trust.browsers !== false;
    $('devices-trust-remove').hidden = !(ca.trust.system || ca.trust.browsers);
  }
}

async function renderDevices() {
  const view = await call('devices', {}, $('devices-error'));
  if (view) renderDevicesView(view);
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

async function renderSessions() {
  const sessions = await call('sessions_list', {}, $('sessions-error')) ?? [];
  $('sessions-empty').hidden = sessions.length > 0;
  $('sessions-revoke-all').disabled = sessions.length === 0;
  $('sessions-list').replaceChildren(...sessions.map((s) => {
    const revoke = el('button', { textContent: 'Revoke', type: 'button', className: 'danger revoke' });
    revoke.setAttribute('aria-label', `Sign out ${s.client_ip} from ${s.app}`);
    revoke.addEventListener('click', () => busy(revoke, async () => {
      await call('session_revoke', { id: s.id }, $('sessions-error'));
      renderSessions();
    }));
    const tr = el('tr', { className: 'session' },
      el('td', { className: 'app', textContent: s.app }),
      el('td', { textContent: s.client_ip }),
      el('td', { className: 'ua', textContent: describeBrowser(s.user_agent), title: s.user_agent }),
      el('td', { textContent: when(s.created_at) }),
      el('td', { textContent: when(s.last_seen) }),
      el('td', {}, revoke));
    tr.dataset.id = s.id;
    return tr;
  }));
}

async function renderSecurity() {
  const sec = await call('security_status', {});
  if (!sec) return;
  const lockout = $('security-lockout');
  if (!sec.running) {
    lockout.textContent = 'Protection is not running.';
  } else if (sec.everyone_locked_for_secs) {
    lockout.textContent = `Too many wrong codes: every sign-in waits ${Math.ceil(sec.everyone_locked_for_secs / 60)} more minute(s).`;
  } else if (sec.locked_clients.length) {
    lockout.textContent = 'Locked out after wrong codes: ' + sec.locked_clients.map((c) => `${c.ip} (${Math.ceil(c.secs / 60)} min)`).join(', ');
  } else {
    lockout.textContent = 'No lockouts. Sign-ins work as usual.';
  }
  const locked = Boolean(sec.everyone_locked_for_secs || sec.locked_clients.length);
  $('security-unlock').hidden = !locked;
  lockout.classList.toggle('locked', locked);
  $('security-failures').replaceChildren(...(sec.recent_failures.length
    ? sec.recent_failures.slice(0, 20).map((f) => el('li', {}, el('span', { textContent: f.ip }), el('span', { className: 'detail', textContent: when(f.at) })))
    : [el('li', { className: 'muted', textContent: 'None.' })]));
}

function hideSecurityQr() {
  $('security-qr').hidden = true;
  forgetSecret($('security-qr-img'), $('security-secret'));
  $('security-replace-panel').hidden = true;
  forgetSecret($('security-replace-img'), $('security-replace-secret'));
}

async function renderSettings() {
  const got = await call('settings_get', {}, $('settings-error'));
  if (!got) return;
  const s = got.settings;
  $('settings-lifetime').value = +(s.lifetime_secs / 3600).toFixed(2);
  $('settings-idle').value = +(s.idle_timeout_secs / 3600).toFixed(2);
  $(s.lan ? 'settings-lan' : 'settings-local').checked = true;
  $('settings-lan-note').hidden = !s.lan;
  $('settings-autostart').checked = s.launch_at_login;
  $('settings-nginx').value = s.nginx_path ?? '';
  $('settings-nginx-found').textContent = got.nginx;
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

  $('apps-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clear('apps-warning');
    await busy($('apps-save'), async () => {
      const saved = editing
        ? await call('app_edit', { original: editing, app: appInput('apps') }, $('apps-error'))
        : await call('app_add', { app: appInput('apps') }, $('apps-error'));
      if (!saved) return;
      show($('apps-warning'), saved.warning);
      stopEdit();
      render();
    });
  });
  $('apps-cancel').addEventListener('click', stopEdit);

  $('devices-to-settings').addEventListener('click', () => selectSection('settings'));
  $('devices-ca-copy').addEventListener('click', () => copyText($('devices-ca-url').textContent, $('devices-ca-copy'), $('devices-ca-url')));
  $('devices-trust-add').addEventListener('click', () => changeTrust($('devices-trust-add'), 'ca_trust'));
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
      ? `Lockouts of single addresses are lifted. To sign in now, open a link below within ${Math.round(unlocked.expires_in_secs / 60)} minutes: it works once, for up to ${unlocked.attempts} codes, even while sign-ins are locked.`
      : 'Lockouts of single addresses are lifted. Add an app to get a one-time sign-in link.';
    $('security-unlock-links').replaceChildren(...unlocked.links.map((link) => {
      const button = el('button', { textContent: `Sign in to ${link.app}` });
      button.addEventListener('click', () => call('open_unlock_link', { url: link.url }, $('security-unlock-error')));
      // Also as text, to paste into another browser on this computer.
      return el('div', { className: 'unlock-link' }, button, el('code', { textContent: link.url }));
    }));
    $('security-unlock-panel').hidden = false;
  }
  $('security-qr-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy($('security-show-qr'), async () => {
      const view = await call('security_show_qr', { code: $('security-code').value }, $('security-qr-error'));
      $('security-code').value = '';
      renderSecurity();
      if (!view) return;
      showSecret(view, $('security-qr-img'), $('security-secret'));
      $('security-qr').hidden = false;
    });
  });
  $('security-hide-qr').addEventListener('click', hideSecurityQr);
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
    show($('security-replace-done'), `The new secret is in use. ${signedOut} session(s) were signed out.`);
  });
  $('security-replace-cancel').addEventListener('click', () => { call('wizard_cancel', {}); hideSecurityQr(); });

  for (const radio of document.querySelectorAll('input[name=listen]')) {
    radio.addEventListener('change', () => { $('settings-lan-note').hidden = !$('settings-lan').checked; });
  }
  $('settings-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clear('settings-saved');
    await busy($('settings-save'), async () => {
      const hours = (id) => Math.round(Number($(id).value) * 3600);
      const saved = await call('settings_set', {
        settings: {
          lifetime_secs: hours('settings-lifetime'),
          idle_timeout_secs: hours('settings-idle'),
          launch_at_login: $('settings-autostart').checked,
          lan: $('settings-lan').checked,
          nginx_path: $('settings-nginx').value.trim() || null,
        },
      }, $('settings-error'));
      if (!saved) return;
      $('settings-warnings').replaceChildren(...saved.warnings.map((w) => el('li', { textContent: w })));
      $('settings-nginx-found').textContent = saved.nginx;
      show($('settings-saved'), 'Saved.');
    });
  });
}

async function refreshSection() {
  const status = await call('status', {});
  if (!status) return;
  if (section === 'status') renderStatus(status);
  if (section === 'apps') renderApps(status);
  if (section === 'sessions') renderSessions();
  if (section === 'devices') renderDevices();
  if (section === 'security') renderSecurity();
  // Settings are not re-read on every change: that would overwrite what the user is typing.
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
render();
listen('state-changed', () => {
  if (wizardDone) render(); // the wizard drives itself
});
// "Last seen" changes without an event (every request touches it): refresh while visible.
setInterval(() => {
  if (wizardDone && section === 'sessions' && !document.hidden) renderSessions();
}, 10000);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && !$('security-qr').hidden) hideSecurityQr();
});
