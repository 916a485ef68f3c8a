//! Whether the desktop shows tray icons at all.
//!
//! Linux panels show tray icons through the StatusNotifierItem protocol: a host registers with
//! the `org.kde.StatusNotifierWatcher` name on the session bus. KDE, Xfce, Cinnamon, MATE and
//! GNOME *with* the AppIndicator extension provide one; stock GNOME does not, and there the
//! icon is created without error but nobody ever sees it. Asking whether the watcher's name has
//! an owner tells the two apart. macOS and Windows always have a menu bar / notification area.

/// The session bus name a tray host owns on Linux.
#[cfg(target_os = "linux")]
pub const WATCHER: &str = "org.kde.StatusNotifierWatcher";

/// Whether a tray host is there now. A session bus that cannot be reached counts as none: the
/// window then explains how it is reached, which is true either way.
#[cfg(target_os = "linux")]
pub fn tray_host_present() -> bool {
    let has_owner = || -> zbus::Result<bool> {
        let bus = zbus::blocking::Connection::session()?;
        let dbus = zbus::blocking::fdo::DBusProxy::new(&bus)?;
        Ok(dbus.name_has_owner(WATCHER.try_into()?)?)
    };
    match has_owner() {
        Ok(present) => present,
        Err(e) => {
            tracing::warn!("cannot ask the session bus for a tray: {e}");
            false
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn tray_host_present() -> bool {
    true
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Against the real session bus (scripts/with-keyring.sh starts a private one, with no tray
    /// host): absent, then present while this test owns the watcher's name, then absent again.
    #[test]
    fn a_tray_host_is_seen_while_the_watcher_name_has_an_owner() {
        assert!(std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(), "run the tests through scripts/with-keyring.sh (a session bus)");
        assert!(!tray_host_present(), "the test's session bus has no tray host");
        let bus = zbus::blocking::Connection::session().unwrap();
        bus.request_name(WATCHER).unwrap();
        assert!(tray_host_present());
        bus.release_name(WATCHER).unwrap();
        assert!(!tray_host_present());
    }
}
