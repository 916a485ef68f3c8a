//! SimpleOTP's tray app: one process that runs the engine (auth server + managed nginx) on
//! Tauri's tokio runtime and sits in the system tray.
//!
//! * [`core`]: the state and every command, in plain Rust (tested without a webview);
//! * [`tray_menu`]: the tray menu's content as a pure function of the state;
//! * [`tray_icon`]: the tray icon for each state, drawn from the app's mark (template image on
//!   macOS, coloured tile elsewhere);
//! * [`tray`]: renders that menu and icon and keeps them current;
//! * [`tray_host`]: whether the desktop shows tray icons at all (stock GNOME does not);
//! * [`commands`]: the thin Tauri commands the window calls;
//! * [`autostart`]: launch at login (with the program's path quoted on Windows);
//! * [`updates`]: signed updates through Tauri's updater (checks, download, install, restart);
//! * [`paths`]: where the config, data and secret live (overridable for tests);
//! * `sync`: the one way to take a mutex (a poisoned one is taken over, not a crash);
//! * `webview_memory`: gives WebKit's memory back once the last window is gone (Linux).
//!
//! The window is created on demand (first run, the tray, a second launch) and closing it destroys
//! it: a tray app runs all day, and a hidden window would keep WebKit's web and network processes
//! (about 200 MiB, docs/bench/tray.md) alive for nothing. The page keeps no state of its own: it
//! asks the core for everything when it loads, so events sent while no window exists need no
//! replay. Quit stops nginx and the auth server cleanly before the process exits.

pub mod autostart;
pub mod commands;
pub mod core;
pub mod paths;
mod sync;
pub mod tray;
pub mod tray_host;
pub mod tray_icon;
pub mod tray_menu;
pub mod updates;
mod webview_memory;

use std::sync::Arc;

use simpleotp_engine::logfile;
use tauri::webview::PageLoadEvent;
use tauri::{AppHandle, Emitter, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tauri_plugin_notification::NotificationExt as _;
use tracing::{error, info, warn};

use crate::autostart::{Autostart, AUTOSTART_FLAG};
use crate::core::{Core, CoreEvent, Protection};
use crate::paths::Paths;
use crate::tray::Tray;
use crate::tray_menu::MenuAction;

const WINDOW: &str = "main";
/// Open the window at launch even when set up (used by the end-to-end test, which needs a
/// webview to drive from the first moment).
const SHOW_FLAG: &str = "--show";

pub fn run() {
    let paths = match Paths::from_env() {
        Ok(paths) => paths,
        Err(e) => {
            let _ = logfile::init_stderr();
            eprintln!("SimpleOTP cannot start: {e}");
            std::process::exit(1);
        }
    };
    // The log file in the data directory, besides stderr: on Windows and macOS an app started
    // from the Start menu, the Dock or at login has no terminal, so without it a bug report would
    // carry nothing. Kept until the very end (RunEvent::Exit), which writes out what is queued.
    let mut log = match logfile::init(&paths.data_dir, "SimpleOTP tray") {
        Ok(guard) => Some(guard),
        Err(e) => {
            warn!("{e}");
            None
        }
    };

    let app = tauri::Builder::default()
        // First: a second launch must reach the running instance before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| show_window(app)))
        .plugin(tauri_plugin_autostart::init(tauri_plugin_autostart::MacosLauncher::LaunchAgent, Some(vec![AUTOSTART_FLAG])))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::retry,
            commands::set_paused,
            commands::wizard_begin,
            commands::wizard_confirm,
            commands::wizard_cancel,
            commands::app_add,
            commands::app_edit,
            commands::app_remove,
            commands::app_free_port,
            commands::app_address,
            commands::app_test,
            commands::open_app,
            commands::sessions_list,
            commands::session_revoke,
            commands::sessions_revoke_all,
            commands::security_status,
            commands::security_unlock,
            commands::security_take_tray_unlock,
            commands::open_unlock_link,
            commands::authenticator_add_begin,
            commands::authenticator_add_confirm,
            commands::authenticator_remove,
            commands::secret_replace_begin,
            commands::secret_replace_confirm,
            commands::settings_get,
            commands::settings_set,
            commands::devices,
            commands::phone_flow_start,
            commands::phone_progress,
            commands::recovery_codes_new,
            commands::wizard_recovery_codes,
            commands::recovery_codes_save,
            commands::passkeys_list,
            commands::passkey_link,
            commands::open_passkey_link,
            commands::passkey_rename,
            commands::passkey_remove,
            commands::ca_trust,
            commands::ca_untrust,
            commands::firewall_retry,
            commands::diagnostics,
            commands::open_config_folder,
            commands::updates_get,
            commands::updates_check_now,
            commands::update_install,
            commands::updates_take_focus,
            commands::open_releases_page,
            commands::launch_at_login_set,
            commands::reachable_check,
        ])
        .setup(move |app| {
            // macOS: no Dock icon while the app lives in the menu bar only.
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);

            let handle = app.handle().clone();
            Autostart(handle.clone()).mend();
            let core = Core::new(paths, Box::new(Autostart(handle.clone())));
            app.manage(core.clone());
            app.manage(Clipboard(std::sync::Mutex::new(None)));
            // No tray (no StatusNotifier host, as on stock GNOME, or the icon failed): the window
            // is then the only way in, and says how to reach it again.
            match Tray::create(&handle, &core) {
                Ok(tray) => {
                    app.manage(tray);
                }
                Err(e) => warn!("no tray icon: {e}"),
            }
            if !refresh_tray_available(&handle) {
                info!("no tray shows the icon: the window is reached by running SimpleOTP again");
            }
            let show_now = std::env::args().any(|a| a == SHOW_FLAG);
            tauri::async_runtime::spawn(forward_events(handle.clone(), core.clone()));
            updates::start(&handle, core.clone());
            // Whether other devices open an app without a code, through its own port: checked
            // now and every 30 seconds (core::listeners).
            tauri::async_runtime::spawn(Core::recheck_bypasses_periodically(Arc::downgrade(&core)));
            tauri::async_runtime::spawn(quit_on_signal(handle.clone(), core.clone()));
            tauri::async_runtime::spawn(async move {
                core.start_up().await;
                if show_now || core.needs_setup() || core.status().state == Protection::Error {
                    show_window(&handle);
                } else {
                    // In the tray only (as at login): give back what only start-up needed.
                    webview_memory::release_when_no_window(handle);
                }
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window destroys it (the app and protection keep running in the tray, see
            // `RunEvent::ExitRequested` below): its page and WebKit's web process go away with it,
            // and so does any secret the page showed. The next `show_window` builds a new one.
            if let WindowEvent::Destroyed = event {
                let app = window.app_handle();
                // An unconfirmed secret is forgotten: a new window starts the wizard with a new one.
                if let Some(core) = app.try_state::<Arc<Core>>() {
                    core.wizard_cancel();
                }
                show_in_dock(app, false);
                webview_memory::release_when_no_window(app.clone());
            }
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("SimpleOTP cannot start: {e}");
            std::process::exit(1);
        }
    };
    app.run(move |app, event| match event {
        RunEvent::ExitRequested { api, code, .. } if !exit_allowed(code) => api.prevent_exit(),
        // macOS: opening SimpleOTP again (Finder, Spotlight, the Dock) while it runs. With no Dock
        // icon, and the menu-bar icon possibly hidden behind the notch, this is the way back in.
        #[cfg(target_os = "macos")]
        RunEvent::Reopen { .. } => show_window(app),
        RunEvent::Exit => {
            stop_before_exit(app);
            drop(log.take());
        }
        _ => {}
    });
}

/// Whether an exit request may end the app. Tauri asks without a code when the last window
/// closed: not a reason to exit, the tray is the app (and protection runs on). Quit, a signal
/// and a restart ask with one (`AppHandle::exit`), after [`quit`] stopped protection.
fn exit_allowed(code: Option<i32>) -> bool {
    code.is_some()
}

/// Quit in the tray menu, SIGTERM/SIGINT: the clean stop, then the exit (which runs
/// [`stop_before_exit`] again; a second stop does nothing).
async fn quit(app: AppHandle, core: Arc<Core>) {
    core.shutdown().await;
    app.exit(0);
}

/// Every way out of the app ends here, just before the process exits: Quit and signals have
/// stopped the engine already (a second stop does nothing); macOS's Cmd+Q, the Dock's Quit and
/// logging out (`applicationWillTerminate`), and Windows' log-off (`WM_ENDSESSION`) come
/// straight here without an exit request, and get the same clean stop (nginx quits, the state
/// file is written). Bounded, so a stuck stop cannot hold up a log-out.
fn stop_before_exit(app: &AppHandle) {
    let Some(core) = app.try_state::<Arc<Core>>().map(|c| c.inner().clone()) else { return };
    // The timer is made inside the runtime: made out here (on the event loop's thread, with no
    // runtime entered) it panics, and the exit, or an update's restart, never happens.
    let stopped = tauri::async_runtime::block_on(async { tokio::time::timeout(EXIT_STOP_TIMEOUT, core.shutdown()).await });
    if stopped.is_err() {
        warn!("protection did not stop within {} seconds; exiting anyway", EXIT_STOP_TIMEOUT.as_secs());
    }
}

/// How long the exit waits for the clean stop (nginx's own graceful stop takes up to 3 s).
const EXIT_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// The tray and the window show the core's current state.
///
/// Only `forward_events` calls this, on one task: menu updates wait for the main thread, so
/// calling it from the main thread (a menu click) while that task holds the menu would deadlock.
/// Everything that changes the state makes the core send `Changed` instead.
fn update_ui(app: &AppHandle) {
    if let (Some(tray), Some(core)) = (app.try_state::<Tray>(), app.try_state::<Arc<Core>>()) {
        tray.update(app, &core);
    }
    // With no window open this reaches nobody, and need not: a new window loads the whole state.
    let _ = app.emit_to(WINDOW, "state-changed", ());
}

async fn forward_events(app: AppHandle, core: Arc<Core>) {
    let mut events = core.subscribe();
    loop {
        match events.recv().await {
            Ok(CoreEvent::Changed) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => update_ui(&app),
            Ok(CoreEvent::LockoutStarted(notice)) => {
                update_ui(&app);
                if let Err(e) = app.notification().builder().title("Someone is guessing codes").body(notice).show() {
                    warn!("cannot show a notification: {e}");
                }
            }
            Ok(CoreEvent::RecoveryCodeUsed(notice)) => {
                update_ui(&app);
                if let Err(e) = app.notification().builder().title("A recovery code was used").body(notice).show() {
                    warn!("cannot show a notification: {e}");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Logging out, `kill` or Ctrl-C in a terminal: the same clean stop as Quit.
async fn quit_on_signal(app: AppHandle, core: Arc<Core>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            warn!("cannot listen for SIGTERM/SIGINT; only Quit stops nginx cleanly");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
    }
    info!("stop requested by a signal");
    quit(app, core).await;
}

/// macOS: a Dock icon (and the app switcher) only while the window is open; otherwise the app
/// lives in the menu bar alone. Other systems have no such notion.
fn show_in_dock(app: &AppHandle, visible: bool) {
    #[cfg(target_os = "macos")]
    {
        let policy = if visible { tauri::ActivationPolicy::Regular } else { tauri::ActivationPolicy::Accessory };
        let _ = app.set_activation_policy(policy);
    }
    #[cfg(not(target_os = "macos"))]
    let _ = (app, visible);
}

/// Finds out again whether a tray shows the icon, and tells the core (the window's wording
/// follows). Asked at launch and whenever the window opens: at login SimpleOTP may start before
/// the desktop's tray host (a GNOME extension) has.
fn refresh_tray_available(app: &AppHandle) -> bool {
    let available = app.try_state::<Tray>().is_some() && tray_host::tray_host_present();
    if let Some(core) = app.try_state::<Arc<Core>>() {
        core.set_tray_available(available);
    }
    available
}

/// Shows the window, creating it when there is none (never opened, or closed since).
pub fn show_window(app: &AppHandle) {
    refresh_tray_available(app);
    show_in_dock(app, true);
    if let Some(window) = app.get_webview_window(WINDOW) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::App("index.html".into()))
        .title("SimpleOTP")
        .inner_size(760.0, 600.0)
        .min_inner_size(560.0, 440.0)
        // Each opening makes a new page (the last one was destroyed with its window): say when
        // it is there (the end-to-end test waits for this after reopening the window).
        .on_page_load(|_, payload| {
            if let PageLoadEvent::Finished = payload.event() {
                info!("the window's page loaded");
            }
        })
        .build();
    if let Err(e) = built {
        error!("cannot open the window: {e}");
    }
}

/// Opens a URL in the default browser.
pub fn open_in_browser(url: &str) -> Result<(), String> {
    open::that_detached(url).map_err(|e| format!("cannot open the browser: {e}"))
}

/// The event the window listens for to show the links of an Unlock made in the tray menu.
const TRAY_UNLOCKED: &str = "tray-unlocked";
/// The event that turns an open window to Settings › Updates (the tray's "Update to x.y.z…").
const SHOW_UPDATES: &str = "show-updates";
/// The event that turns an open window to Status (the tray's "⚠ Jupyter is reachable without a
/// code"); a new window opens there anyway.
const SHOW_STATUS: &str = "show-status";

/// The tray menu's actions.
pub fn on_menu(app: &AppHandle, id: &str) {
    let Some(core) = app.try_state::<Arc<Core>>().map(|c| c.inner().clone()) else { return };
    let Some(action) = MenuAction::parse(id) else { return };
    let app_url = |index: usize| core.status().apps.get(index).map(|a| a.url.clone());
    let app = app.clone();
    match action {
        MenuAction::ShowWindow => show_window(&app),
        MenuAction::ShowUpdate => {
            // A new window asks for this when its page loads; an open one hears the event.
            core.request_updates_focus();
            show_window(&app);
            let _ = app.emit_to(WINDOW, SHOW_UPDATES, ());
        }
        MenuAction::ShowReachable => {
            show_window(&app);
            let _ = app.emit_to(WINDOW, SHOW_STATUS, ());
        }
        MenuAction::OpenApp(index) => {
            if let Some(Err(e)) = app_url(index).map(|url| open_in_browser(&url)) {
                warn!("{e}");
            }
        }
        MenuAction::CopyAppLink(index) => {
            if let Some(url) = app_url(index) {
                match copy_to_clipboard(&app, url) {
                    Ok(()) => info!("an app's link was copied from the tray"),
                    Err(e) => warn!("cannot copy the link: {e}"),
                }
            }
        }
        MenuAction::Unlock => match core.unlock_from_tray() {
            Ok(()) => {
                info!("sign-ins unlocked from the tray");
                // The window shows the one-time links, as its own Unlock does: a window that is
                // open takes them on this event, a new one when its page loads.
                show_window(&app);
                let _ = app.emit_to(WINDOW, TRAY_UNLOCKED, ());
            }
            Err(e) => warn!("{}", e.user_message()),
        },
        MenuAction::ToggleOffline => {
            tauri::async_runtime::spawn(async move {
                let offline = core.status().state == Protection::Paused;
                if let Err(e) = core.set_paused(!offline).await {
                    warn!("{}", e.user_message());
                    show_window(&app);
                }
            });
        }
        MenuAction::ToggleLaunchAtLogin => {
            if let Err(e) = core.toggle_launch_at_login() {
                warn!("{}", e.user_message());
            }
        }
        MenuAction::AskFirewall => {
            tauri::async_runtime::spawn(async move {
                match core.firewall_retry().await {
                    None => info!("Windows Firewall lets other devices in now"),
                    // Still blocked: the window says what else can be done.
                    Some(_) => show_window(&app),
                }
            });
        }
        MenuAction::OpenLogs => {
            let folder = core.logs_folder();
            if let Err(e) = open::that_detached(&folder) {
                warn!("cannot open {}: {e}", folder.display());
            }
        }
        MenuAction::Quit => {
            tauri::async_runtime::spawn(async move {
                info!("quitting");
                quit(app, core).await;
            });
        }
    }
}

/// The system clipboard, kept for the life of the app: on X11 a copy lasts only as long as its
/// owner answers for it, so the clipboard must not be dropped after copying.
struct Clipboard(std::sync::Mutex<Option<arboard::Clipboard>>);

fn copy_to_clipboard(app: &AppHandle, text: String) -> Result<(), arboard::Error> {
    let clipboard = app.state::<Clipboard>();
    let mut slot = sync::lock(&clipboard.0);
    let clipboard = match slot.as_mut() {
        Some(clipboard) => clipboard,
        None => slot.insert(arboard::Clipboard::new()?),
    };
    clipboard.set_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_the_last_window_does_not_exit_but_quit_does() {
        assert!(!exit_allowed(None), "no window left: the tray app keeps running");
        assert!(exit_allowed(Some(0)), "Quit and signals exit with code 0");
        assert!(exit_allowed(Some(tauri::RESTART_EXIT_CODE)), "a restart exits too");
    }

    /// macOS: a menu-bar app from its first moment (no Dock icon flashing up at start or login);
    /// the bundler merges this file into the app's Info.plist.
    #[test]
    fn the_bundle_is_a_menu_bar_app_on_macos() {
        let plist: String = include_str!("../Info.plist").split_whitespace().collect();
        assert!(plist.contains("<key>LSUIElement</key><true/>"), "{plist}");
    }
}
