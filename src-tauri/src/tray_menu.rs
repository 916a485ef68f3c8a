//! What the tray menu says, as a pure function of the app's state.
//!
//! The Tauri part ([`crate::tray`]) only renders these entries. Keeping the content here means
//! every wording and every enabled/checked rule is unit-tested without a desktop, and the
//! renderer can compare two menus to decide whether it may update items in place (Linux's
//! appindicator menus flicker and lose keyboard focus when replaced) or must rebuild.

use crate::core::views::Protection;

/// What the menu needs to know. Built from [`crate::core::StatusView`] by the Tauri part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayState {
    pub protection: Protection,
    /// `(name, protected URL)` of each protected app, in config order.
    pub apps: Vec<(String, String)>,
    pub active_sessions: usize,
    pub launch_at_login: bool,
}

/// The menu item ids the event handler dispatches on.
pub mod ids {
    pub const STATUS: &str = "status";
    pub const APP_PREFIX: &str = "app:";
    pub const NO_APPS: &str = "no-apps";
    pub const OPEN: &str = "open";
    pub const SIGN_OUT_ALL: &str = "sign-out-all";
    pub const PAUSE: &str = "pause";
    pub const LAUNCH_AT_LOGIN: &str = "launch-at-login";
    pub const QUIT: &str = "quit";
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuEntry {
    Item { id: String, text: String, enabled: bool },
    Check { id: String, text: String, checked: bool, enabled: bool },
    Separator,
}

impl MenuEntry {
    fn item(id: impl Into<String>, text: impl Into<String>, enabled: bool) -> MenuEntry {
        MenuEntry::Item { id: id.into(), text: text.into(), enabled }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            MenuEntry::Item { id, .. } | MenuEntry::Check { id, .. } => Some(id),
            MenuEntry::Separator => None,
        }
    }
}

/// The whole menu for `state`.
pub fn tray_menu(state: &TrayState) -> Vec<MenuEntry> {
    let status = match state.protection {
        Protection::NeedsSetup => "SimpleOTP: not set up yet".to_string(),
        Protection::Starting => "SimpleOTP: starting…".to_string(),
        Protection::Running => match state.active_sessions {
            0 => "Protection on · nobody signed in".to_string(),
            1 => "Protection on · 1 session".to_string(),
            n => format!("Protection on · {n} sessions"),
        },
        Protection::Paused => "Protection paused".to_string(),
        Protection::Error => "Protection stopped: see SimpleOTP".to_string(),
    };
    let running = state.protection == Protection::Running;
    let mut entries = vec![MenuEntry::item(ids::STATUS, status, false), MenuEntry::Separator];

    if state.apps.is_empty() {
        entries.push(MenuEntry::item(ids::NO_APPS, "No protected apps yet", false));
    }
    for (index, (name, _url)) in state.apps.iter().enumerate() {
        // By index, not name: renaming an app then changes one label in place.
        entries.push(MenuEntry::item(format!("{}{index}", ids::APP_PREFIX), format!("Open {name}"), running));
    }
    entries.push(MenuEntry::Separator);

    let open_text = if state.protection == Protection::NeedsSetup { "Set up SimpleOTP…" } else { "Open SimpleOTP…" };
    entries.push(MenuEntry::item(ids::OPEN, open_text, true));
    entries.push(MenuEntry::item(ids::SIGN_OUT_ALL, "Sign everyone out", running && state.active_sessions > 0));
    let (pause_text, pause_enabled) = match state.protection {
        Protection::Paused => ("Resume protection", true),
        Protection::Running | Protection::Starting => ("Pause protection", true),
        Protection::Error => ("Pause protection", false),
        Protection::NeedsSetup => ("Pause protection", false),
    };
    entries.push(MenuEntry::item(ids::PAUSE, pause_text, pause_enabled));
    entries.push(MenuEntry::Check {
        id: ids::LAUNCH_AT_LOGIN.into(),
        text: "Launch at login".into(),
        checked: state.launch_at_login,
        enabled: true,
    });
    entries.push(MenuEntry::Separator);
    entries.push(MenuEntry::item(ids::QUIT, "Quit SimpleOTP", true));
    entries
}

/// The app a menu id opens, if it is an app entry.
pub fn app_index(id: &str) -> Option<usize> {
    id.strip_prefix(ids::APP_PREFIX)?.parse().ok()
}

/// Whether `new` can be shown by changing the items of `old` (same ids and kinds in the same
/// order), so that the renderer updates texts and flags instead of building a new menu.
pub fn same_shape(old: &[MenuEntry], new: &[MenuEntry]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(a, b)| match (a, b) {
            (MenuEntry::Item { id: x, .. }, MenuEntry::Item { id: y, .. }) => x == y,
            (MenuEntry::Check { id: x, .. }, MenuEntry::Check { id: y, .. }) => x == y,
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
        }
    }

    fn find<'a>(menu: &'a [MenuEntry], id: &str) -> &'a MenuEntry {
        menu.iter().find(|e| e.id() == Some(id)).unwrap_or_else(|| panic!("no entry {id}"))
    }

    fn text_and_enabled(entry: &MenuEntry) -> (&str, bool) {
        match entry {
            MenuEntry::Item { text, enabled, .. } | MenuEntry::Check { text, enabled, .. } => (text, *enabled),
            MenuEntry::Separator => panic!("separator"),
        }
    }

    #[test]
    fn running_menu_lists_status_apps_actions_and_quit_in_order() {
        let menu = tray_menu(&state(Protection::Running));
        let ids: Vec<_> = menu.iter().map(|e| e.id().unwrap_or("---")).collect();
        assert_eq!(ids, ["status", "---", "app:0", "app:1", "---", "open", "sign-out-all", "pause", "launch-at-login", "---", "quit"]);
        assert_eq!(text_and_enabled(&menu[0]), ("Protection on · 2 sessions", false), "the status line is not clickable");
        assert_eq!(text_and_enabled(find(&menu, "app:0")), ("Open Jupyter", true));
        assert_eq!(text_and_enabled(find(&menu, "app:1")), ("Open Grafana", true));
        assert_eq!(text_and_enabled(find(&menu, "sign-out-all")), ("Sign everyone out", true));
        assert_eq!(text_and_enabled(find(&menu, "pause")), ("Pause protection", true));
        assert_eq!(text_and_enabled(find(&menu, "quit")), ("Quit SimpleOTP", true));
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
    fn sign_out_is_disabled_without_sessions() {
        let mut s = state(Protection::Running);
        s.active_sessions = 0;
        assert!(!text_and_enabled(find(&tray_menu(&s), "sign-out-all")).1);
    }

    #[test]
    fn paused_offers_resume_and_disables_apps() {
        let menu = tray_menu(&state(Protection::Paused));
        assert_eq!(text_and_enabled(&menu[0]).0, "Protection paused");
        assert_eq!(text_and_enabled(find(&menu, "pause")), ("Resume protection", true));
        assert!(!text_and_enabled(find(&menu, "app:0")).1, "a paused app does not answer, so do not offer to open it");
        assert!(!text_and_enabled(find(&menu, "sign-out-all")).1);
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
        assert!(!text_and_enabled(find(&menu, "pause")).1);
    }

    #[test]
    fn error_points_to_the_window() {
        let menu = tray_menu(&state(Protection::Error));
        assert_eq!(text_and_enabled(&menu[0]).0, "Protection stopped: see SimpleOTP");
        assert!(!text_and_enabled(find(&menu, "pause")).1);
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
    fn app_ids_map_back_to_indexes() {
        assert_eq!(app_index("app:0"), Some(0));
        assert_eq!(app_index("app:12"), Some(12));
        assert_eq!(app_index("app:x"), None);
        assert_eq!(app_index("open"), None);
    }

    #[test]
    fn content_changes_keep_the_shape_but_app_count_changes_do_not() {
        let on = tray_menu(&state(Protection::Running));
        let mut s = state(Protection::Paused);
        s.launch_at_login = true;
        s.apps[0].0 = "Lab".into();
        assert!(same_shape(&on, &tray_menu(&s)), "status, labels and flags change in place");
        s.apps.pop();
        assert!(!same_shape(&on, &tray_menu(&s)), "one app fewer needs a new menu");
        s.apps.clear();
        assert!(!same_shape(&on, &tray_menu(&s)), "the placeholder replaces the app entries");
    }
}
