//! What the tray menu says, as a pure function of the app's state.
//!
//! The Tauri part ([`crate::tray`]) only renders these entries. Keeping the content here means
//! every wording and every enabled/checked rule is unit-tested without a desktop, and the
//! renderer can compare two menus to decide whether it may update items in place (Linux's
//! appindicator menus flicker and lose keyboard focus when replaced) or must rebuild.
//!
//! Nothing destructive is one click away in the menu: "Sign everyone out" lives in the window
//! (Sessions), behind a confirmation. What the menu offers is what a glance at the tray calls
//! for: open or copy an app's address, take the apps offline or back, and, while wrong codes
//! have locked sign-ins, **Unlock sign-ins**. An app that other devices open without a code
//! (through its own port, see `core::listeners`) has a line of its own until it is fixed.

use crate::core::views::Protection;

/// What the menu needs to know. Built from [`crate::core::StatusView`] by the Tauri part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayState {
    pub protection: Protection,
    /// `(name, protected URL)` of each protected app, in config order.
    pub apps: Vec<(String, String)>,
    pub active_sessions: usize,
    pub launch_at_login: bool,
    /// Sign-ins are locked (for everyone, or for some address) after too many wrong codes.
    pub locked_out: bool,
    /// Windows Firewall may block other devices (its prompt was declined).
    pub firewall_blocked: bool,
    /// A newer release ("Update to 0.2.0…").
    pub update_available: Option<String>,
    /// The apps other devices open without a code, through their own port (in config order).
    pub reachable_without_code: Vec<String>,
}

/// The menu item ids the event handler dispatches on.
pub mod ids {
    pub const STATUS: &str = "status";
    pub const UNLOCK: &str = "unlock";
    pub const FIREWALL: &str = "firewall";
    pub const UPDATE: &str = "update";
    /// `reachable:N`: "⚠ Jupyter is reachable without a code", the N-th such app.
    pub const REACHABLE_PREFIX: &str = "reachable:";
    /// `app:N`: the submenu of the N-th app (by index, not name: renaming an app then changes
    /// one label in place).
    pub const APP_PREFIX: &str = "app:";
    pub const APP_OPEN_PREFIX: &str = "app-open:";
    pub const APP_COPY_PREFIX: &str = "app-copy:";
    pub const NO_APPS: &str = "no-apps";
    pub const OPEN: &str = "open";
    pub const OFFLINE: &str = "offline";
    pub const LAUNCH_AT_LOGIN: &str = "launch-at-login";
    pub const ABOUT: &str = "about";
    pub const LOGS: &str = "logs";
    pub const QUIT: &str = "quit";
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuEntry {
    Item { id: String, text: String, enabled: bool },
    Check { id: String, text: String, checked: bool, enabled: bool },
    Submenu { id: String, text: String, items: Vec<MenuEntry> },
    Separator,
}

impl MenuEntry {
    fn item(id: impl Into<String>, text: impl Into<String>, enabled: bool) -> MenuEntry {
        MenuEntry::Item { id: id.into(), text: text.into(), enabled }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            MenuEntry::Item { id, .. } | MenuEntry::Check { id, .. } | MenuEntry::Submenu { id, .. } => Some(id),
            MenuEntry::Separator => None,
        }
    }
}

/// What a click on a menu id asks for, parsed once so the handler matches on a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    ShowWindow,
    /// The window, on Settings › Updates.
    ShowUpdate,
    /// The window, on Status, which says where an app is reachable without a code and what to do.
    ShowReachable,
    Unlock,
    OpenApp(usize),
    CopyAppLink(usize),
    ToggleOffline,
    ToggleLaunchAtLogin,
    AskFirewall,
    OpenLogs,
    Quit,
}

impl MenuAction {
    pub fn parse(id: &str) -> Option<MenuAction> {
        let index = |prefix: &str| id.strip_prefix(prefix).and_then(|n| n.parse().ok());
        if let Some(n) = index(ids::APP_OPEN_PREFIX) {
            return Some(MenuAction::OpenApp(n));
        }
        if let Some(n) = index(ids::APP_COPY_PREFIX) {
            return Some(MenuAction::CopyAppLink(n));
        }
        if index(ids::REACHABLE_PREFIX).is_some() {
            return Some(MenuAction::ShowReachable);
        }
        Some(match id {
            // The status line and About are informative; a click on them opens the window.
            ids::OPEN | ids::STATUS | ids::ABOUT => MenuAction::ShowWindow,
            ids::UNLOCK => MenuAction::Unlock,
            ids::UPDATE => MenuAction::ShowUpdate,
            ids::OFFLINE => MenuAction::ToggleOffline,
            ids::LAUNCH_AT_LOGIN => MenuAction::ToggleLaunchAtLogin,
            ids::FIREWALL => MenuAction::AskFirewall,
            ids::LOGS => MenuAction::OpenLogs,
            ids::QUIT => MenuAction::Quit,
            _ => return None,
        })
    }
}

/// "About SimpleOTP 0.1.0": the version where people look for it.
pub fn about_text() -> String {
    format!("About SimpleOTP {}", env!("CARGO_PKG_VERSION"))
}

/// The whole menu for `state`.
pub fn tray_menu(state: &TrayState) -> Vec<MenuEntry> {
    let status = match state.protection {
        Protection::NeedsSetup => "SimpleOTP: not set up yet".to_string(),
        Protection::Starting => "SimpleOTP: starting…".to_string(),
        Protection::Running if state.locked_out => "Sign-ins locked: too many wrong codes".to_string(),
        // Not "Protection on": this computer works, but phones may not get through.
        Protection::Running if state.firewall_blocked => "Windows Firewall may block other devices".to_string(),
        Protection::Running => match state.active_sessions {
            0 => "Protection on · nobody signed in".to_string(),
            1 => "Protection on · 1 session".to_string(),
            n => format!("Protection on · {n} sessions"),
        },
        Protection::Paused => "Apps offline".to_string(),
        Protection::Error => "Protection stopped: see SimpleOTP".to_string(),
    };
    let running = state.protection == Protection::Running;
    let mut entries = vec![MenuEntry::item(ids::STATUS, status, false)];
    if running && state.locked_out {
        entries.push(MenuEntry::item(ids::UNLOCK, "Unlock sign-ins", true));
    }
    if running && state.firewall_blocked {
        entries.push(MenuEntry::item(ids::FIREWALL, "Ask Windows again to let other devices in…", true));
    }
    // Whether protection runs or not: the app's own port answers other devices either way.
    for (index, name) in state.reachable_without_code.iter().enumerate() {
        entries.push(MenuEntry::item(format!("{}{index}", ids::REACHABLE_PREFIX), format!("⚠ {name} is reachable without a code"), true));
    }
    // Installing asks first, in the window, with the release notes: the item only opens it.
    if let Some(version) = &state.update_available {
        entries.push(MenuEntry::item(ids::UPDATE, format!("Update to {version}…"), true));
    }
    entries.push(MenuEntry::Separator);

    if state.apps.is_empty() {
        entries.push(MenuEntry::item(ids::NO_APPS, "No protected apps yet", false));
    }
    for (index, (name, _url)) in state.apps.iter().enumerate() {
        entries.push(MenuEntry::Submenu {
            id: format!("{}{index}", ids::APP_PREFIX),
            text: name.clone(),
            items: vec![
                // An offline app does not answer, so do not offer to open it; its link stays
                // valid and can be copied.
                MenuEntry::item(format!("{}{index}", ids::APP_OPEN_PREFIX), "Open", running),
                MenuEntry::item(format!("{}{index}", ids::APP_COPY_PREFIX), "Copy link", true),
            ],
        });
    }
    entries.push(MenuEntry::Separator);

    let open_text = if state.protection == Protection::NeedsSetup { "Set up SimpleOTP…" } else { "Open SimpleOTP…" };
    entries.push(MenuEntry::item(ids::OPEN, open_text, true));
    let (offline_text, offline_enabled) = match state.protection {
        Protection::Paused => ("Bring apps back online", true),
        Protection::Running | Protection::Starting => ("Take apps offline", true),
        Protection::Error | Protection::NeedsSetup => ("Take apps offline", false),
    };
    entries.push(MenuEntry::item(ids::OFFLINE, offline_text, offline_enabled));
    entries.push(MenuEntry::Check {
        id: ids::LAUNCH_AT_LOGIN.into(),
        text: "Launch at login".into(),
        checked: state.launch_at_login,
        enabled: true,
    });
    entries.push(MenuEntry::Separator);
    entries.push(MenuEntry::item(ids::ABOUT, about_text(), true));
    // The log file's folder, for a bug report (a Windows or macOS app has no terminal to read).
    entries.push(MenuEntry::item(ids::LOGS, "Open logs", true));
    entries.push(MenuEntry::item(ids::QUIT, "Quit SimpleOTP", true));
    entries
}

/// Whether `new` can be shown by changing the items of `old` (same ids and kinds in the same
/// order, submenus included), so that the renderer updates texts and flags instead of building
/// a new menu.
///
/// A submenu's own label counts as shape: on Linux its label sits in a box next to an image
/// (muda 0.20), and changing it in place does not reach the GTK label the panel shows. Only a
/// renamed app changes it, which is rare; the frequent changes (status, counts, flags) stay in
/// place.
pub fn same_shape(old: &[MenuEntry], new: &[MenuEntry]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(a, b)| match (a, b) {
            (MenuEntry::Item { id: x, .. }, MenuEntry::Item { id: y, .. }) => x == y,
            (MenuEntry::Check { id: x, .. }, MenuEntry::Check { id: y, .. }) => x == y,
            (MenuEntry::Submenu { id: x, text: t, items: a }, MenuEntry::Submenu { id: y, text: u, items: b }) => {
                x == y && t == u && same_shape(a, b)
            }
            (MenuEntry::Separator, MenuEntry::Separator) => true,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(protection: Protection) -> TrayState {
        TrayState {
            protection,
            apps: vec![("Jupyter".into(), "http://127.0.0.1:8081/".into()), ("Grafana".into(), "http://127.0.0.1:8082/".into())],
            active_sessions: 2,
            launch_at_login: false,
            locked_out: false,
            firewall_blocked: false,
            update_available: None,
            reachable_without_code: vec![],
        }
    }

    /// An app other devices open without a code has a line under the status line, whatever
    /// protection does; a click opens the window on Status. It goes when the app is fixed.
    #[test]
    fn an_app_reachable_without_a_code_has_a_line_that_opens_status() {
        let without = tray_menu(&state(Protection::Running));
        assert!(!texts(&without).iter().any(|t| t.contains("without a code")));
        for protection in [Protection::Running, Protection::Paused, Protection::Error] {
            let s = TrayState { reachable_without_code: vec!["Jupyter".into()], ..state(protection) };
            let menu = tray_menu(&s);
            assert_eq!(menu[1], MenuEntry::item("reachable:0", "⚠ Jupyter is reachable without a code", true), "{protection:?}");
            assert_eq!(MenuAction::parse("reachable:0"), Some(MenuAction::ShowReachable));
            assert!(!same_shape(&without, &menu), "a line appears: the menu is rebuilt");
        }
        let both = tray_menu(&TrayState {
            reachable_without_code: vec!["Jupyter".into(), "Grafana".into()],
            locked_out: true,
            ..state(Protection::Running)
        });
        let ids: Vec<_> = both.iter().take(4).map(|e| e.id().unwrap_or("---")).collect();
        assert_eq!(ids, ["status", "unlock", "reachable:0", "reachable:1"], "after a lockout's Unlock, one line per app");
        assert_eq!(text_and_enabled(&both[3]).0, "⚠ Grafana is reachable without a code");
    }

    /// A newer release shows as one item under the status line; it only opens the window (where
    /// installing asks first), and the menu keeps its place otherwise.
    #[test]
    fn a_newer_release_is_offered_as_one_item_that_opens_the_window() {
        let without = tray_menu(&state(Protection::Running));
        assert!(flat(&without).iter().all(|e| e.id() != Some(ids::UPDATE)));
        let with = tray_menu(&TrayState { update_available: Some("0.2.0".into()), ..state(Protection::Running) });
        assert_eq!(find(&with, ids::UPDATE), &MenuEntry::item(ids::UPDATE, "Update to 0.2.0…", true));
        assert_eq!(with[1].id(), Some(ids::UPDATE), "right under the status line");
        assert_eq!(MenuAction::parse(ids::UPDATE), Some(MenuAction::ShowUpdate));
        assert!(!same_shape(&without, &with), "an item appears: the menu is rebuilt");
    }

    /// Every entry, submenus' entries after their submenu.
    fn flat(menu: &[MenuEntry]) -> Vec<&MenuEntry> {
        menu.iter()
            .flat_map(|e| {
                let mut v = vec![e];
                if let MenuEntry::Submenu { items, .. } = e {
                    v.extend(flat(items));
                }
                v
            })
            .collect()
    }

    fn find<'a>(menu: &'a [MenuEntry], id: &str) -> &'a MenuEntry {
        flat(menu).into_iter().find(|e| e.id() == Some(id)).unwrap_or_else(|| panic!("no entry {id}"))
    }

    fn texts(menu: &[MenuEntry]) -> Vec<&str> {
        flat(menu).into_iter().filter_map(|e| text_and_enabled_opt(e).map(|(t, _)| t)).collect()
    }

    fn text_and_enabled_opt(entry: &MenuEntry) -> Option<(&str, bool)> {
        match entry {
            MenuEntry::Item { text, enabled, .. } | MenuEntry::Check { text, enabled, .. } => Some((text, *enabled)),
            MenuEntry::Submenu { text, .. } => Some((text, true)),
            MenuEntry::Separator => None,
        }
    }

    fn text_and_enabled(entry: &MenuEntry) -> (&str, bool) {
        text_and_enabled_opt(entry).expect("not a separator")
    }

    #[test]
    fn running_menu_lists_status_apps_actions_about_and_quit_in_order() {
        let menu = tray_menu(&state(Protection::Running));
        let ids: Vec<_> = menu.iter().map(|e| e.id().unwrap_or("---")).collect();
        assert_eq!(ids, ["status", "---", "app:0", "app:1", "---", "open", "offline", "launch-at-login", "---", "about", "logs", "quit"]);
        assert_eq!(text_and_enabled(&menu[0]), ("Protection on · 2 sessions", false), "the status line is not clickable");
        assert_eq!(text_and_enabled(find(&menu, "app:0")).0, "Jupyter");
        assert_eq!(text_and_enabled(find(&menu, "app:1")).0, "Grafana");
        assert_eq!(text_and_enabled(find(&menu, "offline")), ("Take apps offline", true));
        assert_eq!(text_and_enabled(find(&menu, "logs")), ("Open logs", true));
        assert_eq!(MenuAction::parse(ids::LOGS), Some(MenuAction::OpenLogs));
        assert_eq!(text_and_enabled(find(&menu, "quit")), ("Quit SimpleOTP", true));
    }

    #[test]
    fn each_app_has_open_and_copy_link() {
        let menu = tray_menu(&state(Protection::Running));
        for index in 0..2 {
            match find(&menu, &format!("app:{index}")) {
                MenuEntry::Submenu { items, .. } => {
                    let ids: Vec<_> = items.iter().map(|e| e.id().unwrap()).collect();
                    assert_eq!(ids, [format!("app-open:{index}"), format!("app-copy:{index}")]);
                    assert_eq!(text_and_enabled(&items[0]), ("Open", true));
                    assert_eq!(text_and_enabled(&items[1]), ("Copy link", true));
                }
                other => panic!("not a submenu: {other:?}"),
            }
        }
        assert_eq!(MenuAction::parse("app-open:1"), Some(MenuAction::OpenApp(1)));
        assert_eq!(MenuAction::parse("app-copy:0"), Some(MenuAction::CopyAppLink(0)));
        assert_eq!(MenuAction::parse("app-copy:x"), None);
        assert_eq!(MenuAction::parse("app:0"), None, "the submenu itself does nothing");
    }

    #[test]
    fn sign_everyone_out_is_not_in_the_menu() {
        // Destructive: it lives in the window (Sessions) behind a confirmation.
        for protection in [Protection::Running, Protection::Paused, Protection::Error] {
            let menu = tray_menu(&state(protection));
            assert!(!texts(&menu).iter().any(|t| t.contains("Sign") && t.contains("out")), "{:?}", texts(&menu));
        }
    }

    #[test]
    fn unlock_is_offered_only_during_a_lockout() {
        let mut s = state(Protection::Running);
        assert!(flat(&tray_menu(&s)).iter().all(|e| e.id() != Some(ids::UNLOCK)));
        s.locked_out = true;
        let menu = tray_menu(&s);
        assert_eq!(text_and_enabled(&menu[0]), ("Sign-ins locked: too many wrong codes", false));
        assert_eq!(menu[1].id(), Some(ids::UNLOCK), "right under the status line");
        assert_eq!(text_and_enabled(&menu[1]), ("Unlock sign-ins", true));
        assert_eq!(MenuAction::parse(ids::UNLOCK), Some(MenuAction::Unlock));
        assert!(!same_shape(&tray_menu(&state(Protection::Running)), &menu), "the item appears: a new menu");
        // Offline, nothing signs in (the limiter stopped with the gateway): no Unlock.
        s.protection = Protection::Paused;
        assert!(flat(&tray_menu(&s)).iter().all(|e| e.id() != Some(ids::UNLOCK)));
    }

    #[test]
    fn a_blocked_firewall_replaces_protection_on_and_offers_to_ask_again() {
        let mut s = state(Protection::Running);
        assert!(flat(&tray_menu(&s)).iter().all(|e| e.id() != Some(ids::FIREWALL)));
        s.firewall_blocked = true;
        let menu = tray_menu(&s);
        assert_eq!(text_and_enabled(&menu[0]), ("Windows Firewall may block other devices", false));
        assert_eq!(menu[1].id(), Some(ids::FIREWALL), "right under the status line");
        assert_eq!(text_and_enabled(&menu[1]), ("Ask Windows again to let other devices in…", true));
        assert_eq!(MenuAction::parse(ids::FIREWALL), Some(MenuAction::AskFirewall));
        // A lockout is the more urgent news; both items are offered.
        s.locked_out = true;
        let menu = tray_menu(&s);
        assert_eq!(text_and_enabled(&menu[0]).0, "Sign-ins locked: too many wrong codes");
        assert_eq!([menu[1].id(), menu[2].id()], [Some(ids::UNLOCK), Some(ids::FIREWALL)]);
        // Offline, nothing listens: nothing to ask.
        s.protection = Protection::Paused;
        assert!(flat(&tray_menu(&s)).iter().all(|e| e.id() != Some(ids::FIREWALL)));
    }

    #[test]
    fn about_shows_the_version() {
        let menu = tray_menu(&state(Protection::Running));
        assert_eq!(text_and_enabled(find(&menu, "about")), (format!("About SimpleOTP {}", env!("CARGO_PKG_VERSION")).as_str(), true));
        assert!(about_text().starts_with("About SimpleOTP 0."), "{}", about_text());
        assert_eq!(MenuAction::parse(ids::ABOUT), Some(MenuAction::ShowWindow));
    }

    #[test]
    fn status_line_counts_sessions() {
        let mut s = state(Protection::Running);
        for (n, text) in [(0, "Protection on · nobody signed in"), (1, "Protection on · 1 session"), (5, "Protection on · 5 sessions")] {
            s.active_sessions = n;
            assert_eq!(text_and_enabled(&tray_menu(&s)[0]).0, text);
        }
    }

    #[test]
    fn offline_offers_back_online_and_disables_open_but_not_copy() {
        let menu = tray_menu(&state(Protection::Paused));
        assert_eq!(text_and_enabled(&menu[0]).0, "Apps offline", "one word for it: offline, never paused");
        assert_eq!(text_and_enabled(find(&menu, "offline")), ("Bring apps back online", true));
        assert!(!text_and_enabled(find(&menu, "app-open:0")).1, "an offline app does not answer, so do not offer to open it");
        assert!(text_and_enabled(find(&menu, "app-copy:0")).1, "its link stays valid");
        assert!(!texts(&menu).iter().any(|t| t.contains("Pause") || t.contains("Resume")), "the old names are gone");
    }

    #[test]
    fn needs_setup_offers_setup_and_nothing_that_needs_a_gateway() {
        let mut s = state(Protection::NeedsSetup);
        s.apps.clear();
        s.active_sessions = 0;
        let menu = tray_menu(&s);
        assert_eq!(text_and_enabled(&menu[0]).0, "SimpleOTP: not set up yet");
        assert_eq!(text_and_enabled(find(&menu, "no-apps")), ("No protected apps yet", false));
        assert_eq!(text_and_enabled(find(&menu, "open")), ("Set up SimpleOTP…", true));
        assert!(!text_and_enabled(find(&menu, "offline")).1);
    }

    #[test]
    fn error_points_to_the_window() {
        let menu = tray_menu(&state(Protection::Error));
        assert_eq!(text_and_enabled(&menu[0]).0, "Protection stopped: see SimpleOTP");
        assert!(!text_and_enabled(find(&menu, "offline")).1);
        assert!(text_and_enabled(find(&menu, "open")).1);
    }

    #[test]
    fn launch_at_login_is_a_check_that_follows_the_state() {
        let mut s = state(Protection::Running);
        for on in [false, true] {
            s.launch_at_login = on;
            match find(&tray_menu(&s), "launch-at-login") {
                MenuEntry::Check { checked, enabled, .. } => assert_eq!((*checked, *enabled), (on, true)),
                other => panic!("not a check item: {other:?}"),
            }
        }
    }

    #[test]
    fn every_clickable_id_parses_to_an_action() {
        let mut s = state(Protection::Running);
        s.locked_out = true;
        for entry in flat(&tray_menu(&s)) {
            match entry {
                MenuEntry::Item { id, .. } if id != ids::NO_APPS => assert!(MenuAction::parse(id).is_some(), "{id}"),
                MenuEntry::Check { id, .. } => assert!(MenuAction::parse(id).is_some(), "{id}"),
                _ => {}
            }
        }
        assert_eq!(MenuAction::parse("nonsense"), None);
    }

    #[test]
    fn content_changes_keep_the_shape_but_app_count_changes_and_renames_do_not() {
        let on = tray_menu(&state(Protection::Running));
        let mut s = state(Protection::Paused);
        s.launch_at_login = true;
        s.active_sessions = 0;
        assert!(same_shape(&on, &tray_menu(&s)), "status, labels and flags change in place");
        s.apps[0].0 = "Lab".into();
        assert!(!same_shape(&on, &tray_menu(&s)), "a renamed app's submenu is rebuilt (its label cannot change in place)");
        s.apps[0].0 = "Jupyter".into();
        s.apps.pop();
        assert!(!same_shape(&on, &tray_menu(&s)), "one app fewer needs a new menu");
        s.apps.clear();
        assert!(!same_shape(&on, &tray_menu(&s)), "the placeholder replaces the app entries");
    }
}
