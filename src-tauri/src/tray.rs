//! Renders [`crate::tray_menu`] into the system tray and keeps it in step with the state.
//!
//! When only texts and flags change (the usual case: status, session count, pause, the check),
//! the existing items are updated in place. Linux's appindicator menus are exported over D-Bus
//! and a replaced menu closes under the user's pointer; only a change in the number of apps
//! builds a new one (as do the Unlock item appearing and going, and a renamed app).
//!
//! The icon follows the state too ([`crate::tray_icon`]): it is replaced only when its kind
//! changes.

use std::sync::{Arc, Mutex};

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
#[cfg(windows)]
use tauri::tray::{MouseButton, MouseButtonState, TrayIconEvent};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Wry};
use tracing::warn;

use crate::core::Core;
use crate::sync::lock;
use crate::tray_icon::{self, IconStyle, TrayIconKind};
use crate::tray_menu::{self, MenuEntry};

/// A rendered item, kept so its text and flags can be changed later.
enum Rendered {
    Item(MenuItem<Wry>),
    Check(CheckMenuItem<Wry>),
    Submenu(Submenu<Wry>, Vec<Rendered>),
    Separator(PredefinedMenuItem<Wry>),
}

impl Rendered {
    fn as_menu_item(&self) -> &dyn IsMenuItem<Wry> {
        match self {
            Rendered::Item(i) => i,
            Rendered::Check(c) => c,
            Rendered::Submenu(m, _) => m,
            Rendered::Separator(s) => s,
        }
    }
}

pub struct Tray {
    icon: TrayIcon<Wry>,
    shown: Mutex<(Vec<MenuEntry>, Vec<Rendered>)>,
    shown_icon: Mutex<TrayIconKind>,
}

fn icon_image(kind: TrayIconKind) -> Image<'static> {
    Image::new_owned(tray_icon::rgba(kind, IconStyle::native()), tray_icon::SIZE, tray_icon::SIZE)
}

fn render(app: &AppHandle, entries: &[MenuEntry]) -> tauri::Result<(Menu<Wry>, Vec<Rendered>)> {
    let items = render_items(app, entries)?;
    let refs: Vec<&dyn IsMenuItem<Wry>> = items.iter().map(Rendered::as_menu_item).collect();
    Ok((Menu::with_items(app, &refs)?, items))
}

fn render_items(app: &AppHandle, entries: &[MenuEntry]) -> tauri::Result<Vec<Rendered>> {
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        items.push(match entry {
            MenuEntry::Item { id, text, enabled } => Rendered::Item(MenuItem::with_id(app, id.as_str(), text, *enabled, None::<&str>)?),
            MenuEntry::Check { id, text, checked, enabled } => {
                Rendered::Check(CheckMenuItem::with_id(app, id.as_str(), text, *enabled, *checked, None::<&str>)?)
            }
            MenuEntry::Submenu { id, text, items } => {
                let children = render_items(app, items)?;
                let refs: Vec<&dyn IsMenuItem<Wry>> = children.iter().map(Rendered::as_menu_item).collect();
                Rendered::Submenu(Submenu::with_id_and_items(app, id.as_str(), text, true, &refs)?, children)
            }
            MenuEntry::Separator => Rendered::Separator(PredefinedMenuItem::separator(app)?),
        });
    }
    Ok(items)
}

impl Tray {
    pub fn create(app: &AppHandle, core: &Arc<Core>) -> tauri::Result<Tray> {
        let state = core.tray_state();
        let entries = tray_menu::tray_menu(&state);
        let (menu, items) = render(app, &entries)?;
        let kind = tray_icon::icon_for(&state);
        let builder = TrayIconBuilder::with_id("simpleotp")
            .menu(&menu)
            .tooltip("SimpleOTP")
            .icon(icon_image(kind))
            // macOS recolours a template image for the menu bar; elsewhere this does nothing.
            .icon_as_template(IconStyle::native() == IconStyle::Template)
            .on_menu_event(|app, event| {
                crate::on_menu(app, event.id().as_ref());
            });
        // Windows: a left click opens the window, the menu is on the right button. macOS keeps
        // its menu-bar convention (the menu on any click); Linux panels decide for themselves.
        #[cfg(windows)]
        let builder = builder.show_menu_on_left_click(false).on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. } = event {
                crate::show_window(tray.app_handle());
            }
        });
        let icon = builder.build(app)?;
        Ok(Tray { icon, shown: Mutex::new((entries, items)), shown_icon: Mutex::new(kind) })
    }

    /// Shows `core`'s current state.
    pub fn update(&self, app: &AppHandle, core: &Core) {
        let state = core.tray_state();
        self.show_icon(tray_icon::icon_for(&state));
        let entries = tray_menu::tray_menu(&state);
        let mut shown = lock(&self.shown);
        if shown.0 == entries {
            return;
        }
        let result = if tray_menu::same_shape(&shown.0, &entries) {
            update_in_place(&shown.1, &shown.0, &entries)
        } else {
            render(app, &entries).and_then(|(menu, items)| {
                self.icon.set_menu(Some(menu))?;
                shown.1 = items;
                Ok(())
            })
        };
        match result {
            Ok(()) => shown.0 = entries,
            Err(e) => warn!("cannot update the tray menu: {e}"),
        }
        let tooltip = match shown.0.first() {
            Some(MenuEntry::Item { text, .. }) => text.clone(),
            _ => "SimpleOTP".into(),
        };
        let _ = self.icon.set_tooltip(Some(tooltip));
    }

    fn show_icon(&self, kind: TrayIconKind) {
        let mut shown = lock(&self.shown_icon);
        if *shown == kind {
            return;
        }
        let result = self.icon.set_icon(Some(icon_image(kind))).and_then(|()| {
            // Set again after the image: on macOS a new image is not a template by itself.
            self.icon.set_icon_as_template(IconStyle::native() == IconStyle::Template)
        });
        match result {
            Ok(()) => *shown = kind,
            Err(e) => warn!("cannot change the tray icon: {e}"),
        }
    }
}

fn update_in_place(items: &[Rendered], old: &[MenuEntry], new: &[MenuEntry]) -> tauri::Result<()> {
    for ((item, before), after) in items.iter().zip(old).zip(new) {
        if before == after {
            continue;
        }
        match (item, after) {
            (Rendered::Item(i), MenuEntry::Item { text, enabled, .. }) => {
                i.set_text(text)?;
                i.set_enabled(*enabled)?;
            }
            (Rendered::Check(c), MenuEntry::Check { text, checked, enabled, .. }) => {
                c.set_text(text)?;
                c.set_checked(*checked)?;
                c.set_enabled(*enabled)?;
            }
            // Same label (see `tray_menu::same_shape`): only the items inside change.
            (Rendered::Submenu(_, children), MenuEntry::Submenu { items, .. }) => {
                if let MenuEntry::Submenu { items: old_items, .. } = before {
                    update_in_place(children, old_items, items)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
