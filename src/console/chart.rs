//! The reconciliation page's chart, drawn on the server as inline SVG (no script, no library):
//! for each day a run covered, Toss's approved and refunded (cancelled) amounts as two bars.

use std::fmt::Write;

use chrono::NaiveDate;

use super::views::won;

/// One day of the chart.
pub struct Day {
    pub date: NaiveDate,
    pub approved_krw: i64,
    pub refunded_krw: i64,
}

const WIDTH: i64 = 640;
const HEIGHT: i64 = 200;
const TOP: i64 = 10;
const BOTTOM: i64 = 30;

/// The SVG of `days` (oldest on the left). Every text in it is a number or a date, so it needs
/// no escaping; it carries its own title and description for screen readers.
pub fn svg(days: &[Day]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" role="img" aria-labelledby="chart-title chart-desc" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">"#
    );
    out.push_str(r#"<title id="chart-title">일별 승인·환불 금액 / Approved and refunded amounts per day</title>"#);
    let _ = write!(
        out,
        r#"<desc id="chart-desc">{}</desc>"#,
        days.iter()
            .map(|day| format!(
                "{}: approved {}, refunded {}",
                day.date,
                won(day.approved_krw),
                won(day.refunded_krw)
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let plot = HEIGHT - TOP - BOTTOM;
    let _ = write!(
        out,
        r#"<line x1="0" y1="{y}" x2="{WIDTH}" y2="{y}" class="axis"/>"#,
        y = HEIGHT - BOTTOM
    );
    if days.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{x}" y="{y}" text-anchor="middle">아직 대사 결과가 없습니다 / No run has finished yet</text></svg>"#,
            x = WIDTH / 2,
            y = HEIGHT / 2
        );
        return out;
    }
    let max = days
        .iter()
        .flat_map(|day| [day.approved_krw, day.refunded_krw])
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / i64::try_from(days.len()).unwrap_or(1).max(1);
    let bar = (slot / 3).clamp(2, 40);
    for (i, day) in days.iter().enumerate() {
        let x = slot * i64::try_from(i).unwrap_or(0) + (slot - 2 * bar) / 2;
        for (offset, amount, class) in [
            (0, day.approved_krw, "approved"),
            (bar, day.refunded_krw, "refunded"),
        ] {
            let h = amount.max(0) * plot / max;
            let _ = write!(
                out,
                r#"<rect class="{class}" x="{}" y="{}" width="{bar}" height="{h}"><title>{} {class} {}</title></rect>"#,
                x + offset,
                HEIGHT - BOTTOM - h,
                day.date,
                won(amount)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x + bar,
            HEIGHT - BOTTOM + 18,
            day.date.format("%m-%d")
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_largest_amount() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let svg = svg(&[Day {
            date,
            approved_krw: 10_000,
            refunded_krw: 5_000,
        }]);
        assert!(svg.contains(r#"class="approved""#), "{svg}");
        assert!(svg.contains(&format!(r#"height="{}""#, HEIGHT - TOP - BOTTOM)));
        assert!(svg.contains(&format!(r#"height="{}""#, (HEIGHT - TOP - BOTTOM) / 2)));
        assert!(svg.contains("12-05"));
        assert!(super::svg(&[]).contains("No run"));
    }
}
