//! QR codes for the `otpauth://` URI, which a phone's authenticator app scans to learn the secret.
//!
//! Three renderings of one code: text for the terminal (`simpleotp setup` over SSH), an SVG for
//! the tray app, and a PNG file for anything else. All use error correction level M (15%), the
//! usual choice for on-screen codes: it keeps the code small (a typical ~120-byte setup URI makes a
//! version 7 code, 45×45 modules) while tolerating glare and a slightly blurred photo. All include the quiet zone of
//! 4 light modules the standard requires; scanners often fail without it, especially against a
//! dark terminal background.
//!
//! The data is the secret in disguise, so nothing here logs it, error messages never contain it,
//! and the PNG file is created readable by its owner only.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code, on each side (ISO/IEC 18004 requires 4).
pub const QUIET_ZONE: usize = 4;

/// The largest PNG side [`write_png`] will make, in pixels: a guard against a mistyped scale
/// producing a gigabyte image.
pub const MAX_PNG_SIDE: u32 = 8192;

/// Why a QR code could not be made or written. Never contains the data.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("cannot make a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("a QR code PNG scale must be between 1 and {max} pixels per module, not {scale}")]
    Scale { scale: u32, max: u32 },
    #[error("cannot encode the QR code as PNG: {0}")]
    Png(#[from] png::EncodingError),
    #[error("cannot write the QR code to {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The code as a square grid of modules, `true` = dark, quiet zone included.
struct Grid {
    side: usize,
    dark: Vec<bool>,
}

impl Grid {
    fn encode(data: &str) -> Result<Grid, QrError> {
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)?;
        let width = code.width();
        let side = width + 2 * QUIET_ZONE;
        let mut dark = vec![false; side * side];
        for (i, color) in code.to_colors().into_iter().enumerate() {
            let (x, y) = (i % width, i / width);
            dark[(y + QUIET_ZONE) * side + x + QUIET_ZONE] = color == Color::Dark;
        }
        Ok(Grid { side, dark })
    }

    /// Whether the module at (x, y) is dark; outside the grid counts as neither (`None`).
    fn get(&self, x: usize, y: usize) -> Option<bool> {
        (x < self.side && y < self.side).then(|| self.dark[y * self.side + x])
    }
}

/// The code as text for a terminal: each character is one module wide and two high (▀ ▄ █ and
/// space), which keeps modules roughly square in a typical 1:2 terminal cell and halves the
/// height: a typical setup URI gives 53 columns by 27 lines.
///
/// Light modules (quiet zone included) are drawn as blocks in the terminal's text colour and dark
/// modules are left as background. Most terminals are light text on a dark background, so this
/// shows the dark-on-light code phone scanners expect, with a visible light quiet zone that a dark
/// background would otherwise swallow. (On a dark-on-light terminal the code comes out inverted;
/// most authenticator apps' scanners read that too.)
///
/// Every line has the same number of characters, `modules + 8`, and there are
/// `ceil((modules + 8) / 2)` lines, joined by `\n` with no trailing newline.
///
/// Fails with [`QrError::Encode`] if `data` is too long for any QR code (more than 2331 bytes).
pub fn terminal(data: &str) -> Result<String, QrError> {
    let grid = Grid::encode(data)?;
    let mut out = String::with_capacity(grid.side * grid.side.div_ceil(2) * 3 + grid.side);
    for y in (0..grid.side).step_by(2) {
        if y > 0 {
            out.push('\n');
        }
        for x in 0..grid.side {
            // A module is drawn when it is light; below the last row there is nothing to draw.
            let top_light = grid.get(x, y) == Some(false);
            let bottom_light = grid.get(x, y + 1) == Some(false);
            out.push(match (top_light, bottom_light) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
    }
    Ok(out)
}

/// The code as a self-contained SVG document (no XML prolog, so it can also be inlined into
/// HTML): one unit per module, quiet zone included, a white background and the dark modules as
/// one black path. `shape-rendering="crispEdges"` keeps module edges sharp when scaled, and the
/// only URL in it is the SVG namespace, so it loads nothing.
///
/// Fails with [`QrError::Encode`] if `data` is too long for any QR code (more than 2331 bytes).
pub fn svg(data: &str) -> Result<String, QrError> {
    let grid = Grid::encode(data)?;
    let side = grid.side;
    // A default size of 8 px per module; the viewBox lets the tray app scale it freely.
    let px = side * 8;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{px}" height="{px}" viewBox="0 0 {side} {side}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#ffffff"/><path fill="#000000" d=""##
    );
    // One rectangle per horizontal run of dark modules keeps the path short.
    for y in 0..side {
        let mut x = 0;
        while x < side {
            if grid.get(x, y) == Some(true) {
                let start = x;
                while grid.get(x, y) == Some(true) {
                    x += 1;
                }
                let _ = write!(out, "M{start} {y}h{}v1h-{}z", x - start, x - start);
            } else {
                x += 1;
            }
        }
    }
    out.push_str(r#""/></svg>"#);
    Ok(out)
}

/// Writes the code as an 8-bit grayscale PNG at `path`, `scale` pixels per module, quiet zone
/// included (so the image is `(modules + 8) * scale` pixels square). The file is replaced
/// atomically and created with 0600 permissions: the picture *is* the secret.
pub fn write_png(data: &str, path: &Path, scale: u32) -> Result<(), QrError> {
    let grid = Grid::encode(data)?;
    let side_px = u32::try_from(grid.side).ok().and_then(|s| s.checked_mul(scale));
    let side_px = match side_px {
        Some(px) if scale >= 1 && px <= MAX_PNG_SIDE => px,
        _ => return Err(QrError::Scale { scale, max: MAX_PNG_SIDE / grid.side as u32 }),
    };

    let scale = scale as usize;
    let mut pixels = Vec::with_capacity(side_px as usize * side_px as usize);
    for y in 0..grid.side {
        let row: Vec<u8> = (0..grid.side)
            .flat_map(|x| {
                let value = if grid.get(x, y) == Some(true) { 0x00 } else { 0xff };
                std::iter::repeat_n(value, scale)
            })
            .collect();
        for _ in 0..scale {
            pixels.extend_from_slice(&row);
        }
    }

    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, side_px, side_px);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    crate::fsutil::write_atomic(path, &png_bytes).map_err(|source| QrError::Io { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    //! There is no QR *decoder* among the dependencies, so these tests check that each rendering
    //! reproduces, module for module, the matrix the `qrcode` crate computed (read back from the
    //! text, the SVG path and the decoded PNG), plus the structural facts a scanner depends on:
    //! the quiet zone, the sizes, and the finder pattern in the corner.

    use super::*;
    use std::fs::{self, File};

    /// What `simpleotp setup` encodes: a 160-bit secret, issuer and label.
    const URI: &str =
        "otpauth://totp/SimpleOTP:nextcloud?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=SimpleOTP&algorithm=SHA1&digits=6&period=30";

    /// The code's own matrix (without quiet zone), `true` = dark, and its width in modules.
    fn reference(data: &str) -> (Vec<bool>, usize) {
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).unwrap();
        assert_eq!(code.error_correction_level(), EcLevel::M);
        (code.to_colors().into_iter().map(|c| c == Color::Dark).collect(), code.width())
    }

    /// Checks a full rendered grid (quiet zone included) against the reference.
    fn assert_matches_reference(rendered: &[Vec<bool>], data: &str) {
        let (modules, width) = reference(data);
        let side = width + 2 * QUIET_ZONE;
        assert_eq!(rendered.len(), side, "rows");
        for (y, row) in rendered.iter().enumerate() {
            assert_eq!(row.len(), side, "row {y} length");
            for (x, &dark) in row.iter().enumerate() {
                let inside = (QUIET_ZONE..QUIET_ZONE + width).contains(&x) && (QUIET_ZONE..QUIET_ZONE + width).contains(&y);
                let expected = inside && modules[(y - QUIET_ZONE) * width + (x - QUIET_ZONE)];
                assert_eq!(dark, expected, "module ({x}, {y}) (quiet zone included)");
            }
        }
    }

    #[test]
    fn terminal_has_the_expected_shape() {
        for data in ["x", URI, &"A".repeat(500)] {
            let (_, modules) = reference(data);
            let text = terminal(data).unwrap();
            let rows: Vec<&str> = text.split('\n').collect();
            assert_eq!(rows.len(), (modules + 8).div_ceil(2), "{modules} modules");
            for row in &rows {
                assert_eq!(row.chars().count(), modules + 8, "every row is as wide as the code: {row:?}");
                assert!(row.chars().all(|c| matches!(c, '▀' | '▄' | '█' | ' ')), "{row:?}");
            }
            // The top two module rows are quiet zone: light, so all full blocks.
            assert!(rows[0].chars().all(|c| c == '█'), "{}", rows[0]);
            assert!(!text.ends_with('\n'));
        }
    }

    #[test]
    fn terminal_reproduces_every_module() {
        let text = terminal(URI).unwrap();
        let side = text.split('\n').next().unwrap().chars().count();
        let mut grid = vec![Vec::new(); side];
        for (i, row) in text.split('\n').enumerate() {
            for c in row.chars() {
                // Blocks are light modules; an odd last row has only its top half.
                let (top_light, bottom_light) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    _ => (false, false),
                };
                grid[2 * i].push(!top_light);
                if 2 * i + 1 < side {
                    grid[2 * i + 1].push(!bottom_light);
                } else {
                    assert!(!bottom_light, "nothing is drawn below the last module row");
                }
            }
        }
        assert_matches_reference(&grid, URI);
    }

    #[test]
    fn terminal_size_for_a_typical_uri() {
        // Documented: 53×27 for a typical setup URI; it must stay usable in an ordinary terminal.
        let text = terminal(URI).unwrap();
        let (cols, rows) = (text.split('\n').next().unwrap().chars().count(), text.split('\n').count());
        println!("typical URI: {cols}×{rows}");
        assert!(cols <= 80 && rows <= 30, "{cols}×{rows}");
    }

    #[test]
    fn svg_is_self_contained_and_reproduces_every_module() {
        let (_, modules) = reference(URI);
        let side = modules + 8;
        let svg = svg(URI).unwrap();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains(&format!(r#"viewBox="0 0 {side} {side}""#)), "{svg}");
        assert!(svg.contains(r#"shape-rendering="crispEdges""#));
        assert!(svg.contains(&format!(r##"<rect width="{side}" height="{side}" fill="#ffffff"/>"##)));
        // The only URL is the namespace: no external references, scripts or images.
        assert_eq!(svg.matches("http").count(), 1, "{svg}");
        assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
        for forbidden in ["href", "<image", "<script", "url(", "<?xml"] {
            assert!(!svg.contains(forbidden), "{forbidden} in {svg}");
        }

        // Read the path back: each "M{x} {y}h{w}v1h-{w}z" is a run of dark modules.
        let d = svg.split(r#" d=""#).nth(1).unwrap().split('"').next().unwrap();
        assert!(!d.is_empty());
        let mut grid = vec![vec![false; side]; side];
        for run in d.split('z').filter(|r| !r.is_empty()) {
            let run = run.strip_prefix('M').unwrap();
            let (xy, rest) = run.split_once('h').unwrap();
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let w: usize = rest.split_once('v').unwrap().0.parse().unwrap();
            assert_eq!(rest, format!("{w}v1h-{w}"), "unexpected path segment {run}");
            for cell in &mut grid[y][x..x + w] {
                assert!(!*cell, "overlapping runs");
                *cell = true;
            }
        }
        assert_matches_reference(&grid, URI);
    }

    fn decode_png(path: &Path) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn png_has_the_expected_size_colours_and_modules() {
        let dir = tempfile::tempdir().unwrap();
        let (_, modules) = reference(URI);
        for scale in [1, 3, 8] {
            let path = dir.path().join(format!("qr-{scale}.png"));
            write_png(URI, &path, scale).unwrap();
            let (info, pixels) = decode_png(&path);
            let side = (modules as u32 + 8) * scale;
            assert_eq!((info.width, info.height), (side, side));
            assert_eq!(info.color_type, png::ColorType::Grayscale);
            assert_eq!(info.bit_depth, png::BitDepth::Eight);
            let px = |x: u32, y: u32| pixels[(y * side + x) as usize];
            assert_eq!(px(0, 0), 0xff, "quiet zone is white");
            assert_eq!(px(4 * scale, 4 * scale), 0x00, "top-left finder pattern is black");
            assert!(pixels.iter().all(|&p| p == 0 || p == 0xff), "only black and white");

            // Every pixel of a module has the module's colour.
            let s = scale as usize;
            let grid: Vec<Vec<bool>> = (0..modules + 8)
                .map(|my| {
                    (0..modules + 8)
                        .map(|mx| {
                            let first = px((mx * s) as u32, (my * s) as u32);
                            for dy in 0..s {
                                for dx in 0..s {
                                    assert_eq!(px((mx * s + dx) as u32, (my * s + dy) as u32), first);
                                }
                            }
                            first == 0
                        })
                        .collect()
                })
                .collect();
            assert_matches_reference(&grid, URI);
        }
    }

    #[test]
    fn png_is_private_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.png");
        fs::write(&path, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            write_png(URI, &path, 2).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        #[cfg(windows)]
        {
            crate::fsutil::testing::let_everyone_read(&path);
            write_png(URI, &path, 2).unwrap();
            assert_eq!(crate::fsutil::check_owner_only(&File::open(&path).unwrap()), Ok(()));
        }
        #[cfg(not(any(unix, windows)))]
        write_png(URI, &path, 2).unwrap();
        assert!(fs::read(&path).unwrap().starts_with(b"\x89PNG"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn bad_scale_and_too_much_data_are_errors_without_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.png");
        for scale in [0, 10_000, u32::MAX] {
            let err = write_png(URI, &path, scale).unwrap_err();
            assert!(matches!(err, QrError::Scale { .. }), "{err:?}");
            assert!(!format!("{err} {err:?}").contains("JBSWY3DP"));
        }
        let huge = format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP{}", "a".repeat(3000));
        let err = write_png(&huge, &path, 4).unwrap_err();
        assert!(matches!(err, QrError::Encode(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("JBSWY3DP"));
        assert!(!path.exists());
    }

    /// This used to be a panic (`terminal` and `svg` had no way to fail): a long enough issuer,
    /// which the otpauth URI holds twice, made the tray app's setup wizard crash.
    #[test]
    fn data_no_qr_code_holds_is_an_error_in_every_rendering() {
        let issuer = "home lab ".repeat(140);
        let uri = format!("otpauth://totp/{issuer}:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer={issuer}");
        let terminal_err = terminal(&uri).unwrap_err();
        let svg_err = svg(&uri).unwrap_err();
        for err in [&terminal_err, &svg_err] {
            assert!(matches!(err, QrError::Encode(qrcode::types::QrError::DataTooLong)), "{err:?}");
            assert!(!format!("{err} {err:?}").contains("JBSWY3DP"));
        }
        assert!(matches!(terminal(&"A".repeat(5000)), Err(QrError::Encode(_))));
    }

    /// The longest issuer and account the config accepts, in characters that percent-encode to
    /// the most bytes, with a secret twice the usual size, still make a code.
    #[test]
    fn the_longest_issuer_and_account_still_make_a_code() {
        use crate::config::{Account, Issuer, MAX_LABEL_BYTES};
        use crate::totp::{Totp, TotpSecret};
        let widest = "€".repeat(MAX_LABEL_BYTES / '€'.len_utf8());
        let (issuer, account) = (Issuer::parse(&widest).unwrap(), Account::parse(&widest).unwrap());
        let uri = Totp::new(&TotpSecret::from_bytes(vec![7; 40]).unwrap(), &issuer, &account).otpauth_uri();
        assert!(uri.len() > 3 * 9 * 21, "{uri}");
        svg(&uri).unwrap();
        terminal(&uri).unwrap();
    }
}
