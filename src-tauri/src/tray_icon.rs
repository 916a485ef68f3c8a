//! The tray icon for each state, drawn in code from the app's mark (the shield and keyhole of
//! `icons/source.svg`), so that no binary has to be kept in step with the source by hand.
//!
//! Two styles, chosen per OS in [`IconStyle::native`]:
//!
//! * **macOS: a template image** (black and alpha only). The menu bar recolours it for light and
//!   dark bars and for the highlighted state, as every menu-bar icon is expected to be.
//! * **Linux and Windows: the coloured tile.** Neither recolours tray icons for the panel's
//!   theme (a StatusNotifierItem pixmap and a Windows notification-area icon are shown as
//!   they are), so a black mark vanishes on a dark panel and a white one on a light panel. A
//!   tile that carries its own background reads on both.
//!
//! The states differ in shape, not only in colour (colour alone fails colour-blind users and
//! is all a template image cannot have): offline is the outline of the shield, stopped is the
//! outline crossed out, locked out has a padlock badge. The tile's colour adds to that: blue
//! when protecting, grey offline, red stopped, amber locked out.

use crate::core::views::Protection;
use crate::tray_menu::TrayState;

/// Which picture the tray shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrayIconKind {
    /// Protecting (or starting, or waiting for the setup): the plain mark.
    Normal,
    /// The owner took the apps offline.
    Offline,
    /// Protection stopped because of a problem.
    Stopped,
    /// Sign-ins are locked after too many wrong codes.
    LockedOut,
}

/// The one place that says which state shows which icon.
pub fn icon_for(state: &TrayState) -> TrayIconKind {
    match state.protection {
        Protection::Running if state.locked_out => TrayIconKind::LockedOut,
        Protection::Running | Protection::Starting | Protection::NeedsSetup => TrayIconKind::Normal,
        Protection::Paused => TrayIconKind::Offline,
        Protection::Error => TrayIconKind::Stopped,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IconStyle {
    /// Black and alpha, for `icon_as_template(true)`.
    Template,
    /// The coloured tile with a white mark.
    Tile,
}

impl IconStyle {
    pub fn native() -> IconStyle {
        if cfg!(target_os = "macos") {
            IconStyle::Template
        } else {
            IconStyle::Tile
        }
    }
}

/// Width and height of the drawn icon, in pixels (trays scale it to their size).
pub const SIZE: u32 = 64;

/// The icon as RGBA rows, `SIZE`×`SIZE`.
pub fn rgba(kind: TrayIconKind, style: IconStyle) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((SIZE * SIZE * 4) as usize);
    for py in 0..SIZE {
        for px in 0..SIZE {
            let [r, g, b, a] = pixel(kind, style, px, py);
            pixels.extend_from_slice(&[r, g, b, a]);
        }
    }
    pixels
}

/// Samples per pixel along each axis (anti-aliasing by supersampling).
const SAMPLES: u32 = 4;

fn pixel(kind: TrayIconKind, style: IconStyle, px: u32, py: u32) -> [u8; 4] {
    let (mut tile, mut mark) = (0.0f32, 0.0f32);
    for sy in 0..SAMPLES {
        for sx in 0..SAMPLES {
            // Unit coordinates: (0, 0) top left, (1, 1) bottom right.
            let x = (px as f32 + (sx as f32 + 0.5) / SAMPLES as f32) / SIZE as f32;
            let y = (py as f32 + (sy as f32 + 0.5) / SAMPLES as f32) / SIZE as f32;
            match style {
                IconStyle::Template => mark += f32::from(u8::from(in_mark(kind, x, y, 0.02))),
                IconStyle::Tile => {
                    tile += f32::from(u8::from(in_rounded_square(x, y)));
                    // The mark inside the tile, smaller.
                    mark +=
                        f32::from(u8::from(in_rounded_square(x, y) && in_mark(kind, 0.5 + (x - 0.5) * 1.45, 0.5 + (y - 0.5) * 1.45, 0.0)));
                }
            }
        }
    }
    let n = (SAMPLES * SAMPLES) as f32;
    let (tile, mark) = (tile / n, mark / n);
    let byte = |v: f32| (v * 255.0).round() as u8;
    match style {
        IconStyle::Template => [0, 0, 0, byte(mark)],
        IconStyle::Tile => {
            let [r, g, b] = tile_colour(kind);
            // White over the tile's colour, in proportion to the mark's coverage.
            let mix = |c: u8| {
                let c = f32::from(c) / 255.0;
                let over = if tile > 0.0 { mark / tile } else { 0.0 };
                byte(c + (1.0 - c) * over)
            };
            [mix(r), mix(g), mix(b), byte(tile)]
        }
    }
}

fn tile_colour(kind: TrayIconKind) -> [u8; 3] {
    match kind {
        TrayIconKind::Normal => [0x2f, 0x54, 0xc9],
        TrayIconKind::Offline => [0x6b, 0x72, 0x80],
        TrayIconKind::Stopped => [0xc6, 0x28, 0x28],
        TrayIconKind::LockedOut => [0xb4, 0x53, 0x09],
    }
}

/// The rounded square of the app icon (`rect x=64 … rx=200` of 1024).
fn in_rounded_square(x: f32, y: f32) -> bool {
    let (lo, hi, r) = (64.0 / 1024.0, 960.0 / 1024.0, 200.0 / 1024.0);
    let cx = x.clamp(lo + r, hi - r);
    let cy = y.clamp(lo + r, hi - r);
    (lo..=hi).contains(&x) && (lo..=hi).contains(&y) && (x - cx).powi(2) + (y - cy).powi(2) <= r * r
}

/// The source's shield spans x 256..768 and y 200..836 of 1024; here it fills the icon's
/// height with a small margin (`margin`, in unit coordinates), centred.
fn to_source(x: f32, y: f32, margin: f32) -> (f32, f32) {
    let scale = (836.0 - 200.0) / (1.0 - 2.0 * margin);
    (512.0 + (x - 0.5) * scale, 200.0 + (y - margin) * scale)
}

/// Half the shield's width at height `y` (source units), or `None` above or below it.
fn shield_half_width(y: f32) -> Option<f32> {
    match y {
        y if !(200.0..=836.0).contains(&y) => None,
        // The roof: from the tip (512, 200) down to the shoulders (256|768, 296).
        y if y < 296.0 => Some((y - 200.0) / 96.0 * 256.0),
        y if y <= 500.0 => Some(256.0),
        // The keel: the cubic (768,500) (768,660) (660,780) (512,836), whose y rises with t.
        y => {
            let bezier = |p: [f32; 4], t: f32| {
                let u = 1.0 - t;
                u * u * u * p[0] + 3.0 * u * u * t * p[1] + 3.0 * u * t * t * p[2] + t * t * t * p[3]
            };
            let (xs, ys) = ([768.0, 768.0, 660.0, 512.0], [500.0, 660.0, 780.0, 836.0]);
            let (mut lo, mut hi) = (0.0f32, 1.0f32);
            for _ in 0..24 {
                let mid = (lo + hi) / 2.0;
                if bezier(ys, mid) < y {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            Some(bezier(xs, lo) - 512.0)
        }
    }
}

fn in_shield(sx: f32, sy: f32) -> bool {
    shield_half_width(sy).is_some_and(|hw| (sx - 512.0).abs() <= hw)
}

/// The shield shrunk towards its centre: what an outline leaves empty.
fn in_shield_inner(sx: f32, sy: f32, stroke: f32) -> bool {
    let (cx, cy) = (512.0, 500.0);
    let k = 1.0 + stroke / 256.0;
    in_shield(cx + (sx - cx) * k, cy + (sy - cy) * k)
}

fn in_keyhole(sx: f32, sy: f32) -> bool {
    let in_circle = (sx - 512.0).powi(2) + (sy - 470.0).powi(2) <= 72.0 * 72.0;
    // The stem widens from 64 (y 520) to 108 (y 660).
    let in_stem = (520.0..=660.0).contains(&sy) && (sx - 512.0).abs() <= 32.0 + (sy - 520.0) / 140.0 * 22.0;
    in_circle || in_stem
}

/// The padlock badge in the bottom-right corner, and the gap that keeps it apart from the shield.
fn in_padlock(x: f32, y: f32) -> bool {
    let body = (0.56..=0.96).contains(&x) && (0.66..=0.98).contains(&y);
    let (cx, cy) = (0.76, 0.66);
    let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
    let shackle = y <= cy && (0.09..=0.15).contains(&d);
    body || shackle
}

fn near_padlock(x: f32, y: f32) -> bool {
    let body = (0.50..=1.0).contains(&x) && (0.60..=1.0).contains(&y);
    let d = ((x - 0.76).powi(2) + (y - 0.66).powi(2)).sqrt();
    body || (y <= 0.66 && d <= 0.21)
}

/// Whether the unit point `(x, y)` is inked for `kind`.
fn in_mark(kind: TrayIconKind, x: f32, y: f32, margin: f32) -> bool {
    let (sx, sy) = to_source(x, y, margin);
    let stroke = 70.0;
    match kind {
        TrayIconKind::Normal => in_shield(sx, sy) && !in_keyhole(sx, sy),
        TrayIconKind::Offline => in_shield(sx, sy) && !in_shield_inner(sx, sy, stroke),
        TrayIconKind::Stopped => {
            // The outline, crossed out from top left to bottom right.
            let on_slash = ((x - 0.5) - (y - 0.5)).abs() / std::f32::consts::SQRT_2 <= 0.055 && (0.08..=0.92).contains(&x);
            (in_shield(sx, sy) && !in_shield_inner(sx, sy, stroke)) || on_slash
        }
        TrayIconKind::LockedOut => in_padlock(x, y) || (!near_padlock(x, y) && in_shield(sx, sy) && !in_keyhole(sx, sy)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(protection: Protection, locked_out: bool) -> TrayState {
        TrayState {
            protection,
            apps: vec![],
            active_sessions: 0,
            launch_at_login: false,
            locked_out,
            firewall_blocked: false,
            update_available: None,
            reachable_without_code: vec![],
        }
    }

    const KINDS: [TrayIconKind; 4] = [TrayIconKind::Normal, TrayIconKind::Offline, TrayIconKind::Stopped, TrayIconKind::LockedOut];

    #[test]
    fn each_state_maps_to_its_icon() {
        assert_eq!(icon_for(&state(Protection::Running, false)), TrayIconKind::Normal);
        assert_eq!(icon_for(&state(Protection::Starting, false)), TrayIconKind::Normal);
        assert_eq!(icon_for(&state(Protection::NeedsSetup, false)), TrayIconKind::Normal);
        assert_eq!(icon_for(&state(Protection::Running, true)), TrayIconKind::LockedOut);
        assert_eq!(icon_for(&state(Protection::Paused, false)), TrayIconKind::Offline);
        assert_eq!(icon_for(&state(Protection::Error, false)), TrayIconKind::Stopped);
        // A stop or going offline outranks a lockout that no longer matters.
        assert_eq!(icon_for(&state(Protection::Paused, true)), TrayIconKind::Offline);
        assert_eq!(icon_for(&state(Protection::Error, true)), TrayIconKind::Stopped);
    }

    #[test]
    fn template_icons_are_black_and_alpha_only() {
        for kind in KINDS {
            let pixels = rgba(kind, IconStyle::Template);
            assert_eq!(pixels.len(), (SIZE * SIZE * 4) as usize);
            assert!(pixels.chunks(4).all(|p| p[..3] == [0, 0, 0]), "{kind:?} has colour");
            let inked = pixels.chunks(4).filter(|p| p[3] > 128).count();
            let share = inked as f32 / (SIZE * SIZE) as f32;
            assert!((0.12..0.7).contains(&share), "{kind:?} inks {share} of the icon");
            assert_eq!(pixels[3], 0, "{kind:?}: the corner is transparent");
        }
    }

    #[test]
    fn every_state_looks_different_in_both_styles() {
        for style in [IconStyle::Template, IconStyle::Tile] {
            for (i, a) in KINDS.iter().enumerate() {
                for b in &KINDS[i + 1..] {
                    let (pa, pb) = (rgba(*a, style), rgba(*b, style));
                    // Differ in shape, not only colour: compare how much is white/inked.
                    let ink = |p: &[u8]| match style {
                        IconStyle::Template => p.chunks(4).map(|p| p[3] > 128).collect::<Vec<_>>(),
                        IconStyle::Tile => p.chunks(4).map(|p| p[0] > 200 && p[1] > 200 && p[2] > 200).collect(),
                    };
                    let differing = ink(&pa).iter().zip(ink(&pb)).filter(|(x, y)| **x != *y).count();
                    assert!(differing > 60, "{a:?} and {b:?} ({style:?}) differ in only {differing} pixels");
                }
            }
        }
    }

    #[test]
    fn tiles_have_their_state_colour_and_a_white_mark() {
        for kind in KINDS {
            let pixels = rgba(kind, IconStyle::Tile);
            let centre_left = ((SIZE / 2 * SIZE + SIZE / 8) * 4) as usize;
            assert_eq!(pixels[centre_left..centre_left + 3], tile_colour(kind), "{kind:?}: the tile's colour at its left edge");
            assert_eq!(pixels[centre_left + 3], 255);
            assert!(pixels.chunks(4).any(|p| p == [255, 255, 255, 255]), "{kind:?}: no white mark");
            assert_eq!(pixels[3], 0, "{kind:?}: the rounded corner is transparent");
        }
    }

    #[test]
    fn the_shield_follows_the_source_outline() {
        assert_eq!(shield_half_width(199.0), None);
        assert_eq!(shield_half_width(200.0), Some(0.0));
        assert_eq!(shield_half_width(400.0), Some(256.0));
        let near_tip = shield_half_width(835.0).unwrap();
        assert!(near_tip < 40.0, "{near_tip}");
        let upper_keel = shield_half_width(560.0).unwrap();
        assert!((240.0..256.0).contains(&upper_keel), "{upper_keel}");
    }
}
