//! A grouped bar chart of requests per second (A, B, C, D at each connection count) as a
//! self-contained SVG: no plotting dependency for four bars a group.

use std::fmt::Write;

use crate::measure::Results;

const SERIES: [(&str, &str); 4] =
    [("A unprotected", "#8a94a6"), ("B protected", "#2f54c9"), ("C no-op auth (floor)", "#49a078"), ("D no cookie", "#d08c2e")];

pub fn svg(results: &Results) -> String {
    let (width, height) = (760.0_f64, 380.0_f64);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 70.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let values: Vec<[f64; 4]> = results
        .levels
        .iter()
        .map(|l| {
            [
                l.a_unprotected.requests_per_second(),
                l.b_protected.requests_per_second(),
                l.c_noop_auth.requests_per_second(),
                l.d_no_cookie.requests_per_second(),
            ]
        })
        .collect();
    let max = values.iter().flatten().cloned().fold(1.0, f64::max);
    let scale_max = nice_ceiling(max);

    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{left}" y="22" font-size="15" font-weight="600" fill="#17202b">Requests per second through nginx (higher is better)</text>
"##
    );
    for tick in 0..=5 {
        let v = scale_max * tick as f64 / 5.0;
        let y = top + plot_h - plot_h * tick as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e7ee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#4f5b6b">{}</text>"##,
            left + plot_w,
            left - 8.0,
            y + 4.0,
            format_thousands(v)
        );
    }
    let groups = values.len().max(1) as f64;
    let group_w = plot_w / groups;
    let bar_w = group_w * 0.8 / 4.0;
    for (g, (level, group)) in results.levels.iter().zip(&values).enumerate() {
        let x0 = left + group_w * g as f64 + group_w * 0.1;
        for (i, value) in group.iter().enumerate() {
            let h = plot_h * value / scale_max;
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {:.0} req/s</title></rect>"##,
                x0 + bar_w * i as f64,
                top + plot_h - h,
                bar_w - 2.0,
                SERIES[i].1,
                SERIES[i].0,
                value
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#17202b">{} conn{}</text>"##,
            x0 + bar_w * 2.0,
            top + plot_h + 18.0,
            level.connections,
            if level.connections == 1 { "" } else { "s" }
        );
    }
    for (i, (name, color)) in SERIES.iter().enumerate() {
        let x = left + i as f64 * 170.0;
        let y = height - 22.0;
        let _ = writeln!(
            s,
            r##"<rect x="{x}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{}" y="{y}" fill="#17202b">{name}</text>"##,
            y - 10.0,
            x + 18.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// 1, 2 or 5 times a power of ten, at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= v).unwrap_or(v)
}

fn format_thousands(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k", (v / 1000.0 * 10.0).round() / 10.0)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceiling_rounds_up_to_1_2_5() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(nice_ceiling(4999.0), 5000.0);
        assert_eq!(nice_ceiling(20000.0), 20000.0);
    }
}
