//! Charts drawn on the server as SVG: no script, no library, nothing
//! fetched. Each chart is an image with a text alternative and its numbers
//! in a table beside it, so it reads without sight and without colour.

use maud::{Markup, html};

/// One bar: a label and its stacked parts (series index, value).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub parts: Vec<f64>,
}

/// A series: its name and CSS class (colour).
#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 28.0;

/// Stacked bars with a legend and a data table.
pub fn stacked(title: &str, unit: &str, series: &[Series], bars: &[Bar]) -> Markup {
    let top = bars.iter().map(|b| b.parts.iter().sum::<f64>()).fold(0.0, f64::max);
    let scale = if top > 0.0 { (HEIGHT - BOTTOM - 8.0) / top } else { 0.0 };
    let slot = if bars.is_empty() { 0.0 } else { (WIDTH - LEFT) / bars.len() as f64 };
    let bar_width = (slot * 0.7).clamp(1.0, 48.0);
    let summary = format!(
        "{title}: {} bars, highest {} {unit}",
        bars.len(),
        if top.fract() == 0.0 { format!("{top:.0}") } else { format!("{top:.1}") }
    );
    html! {
        figure.chart {
            figcaption { (title) }
            @if bars.is_empty() { p.muted { "Nothing to show yet." } } @else {
                svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary) {
                    line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
                    text.tick x="2" y="12" { (number(top)) }
                    @for (i, bar) in bars.iter().enumerate() {
                        @let x = LEFT + i as f64 * slot + (slot - bar_width) / 2.0;
                        g {
                            title { (bar.label) ": " (bar.parts.iter().zip(series).map(|(v, s)| format!("{} {}", s.name, number(*v))).collect::<Vec<_>>().join(", ")) }
                            @for (class, y, h) in stack(bar, series, scale) {
                                rect class=(class) x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{bar_width:.1}")) height=(format!("{h:.1}")) {}
                            }
                            @if bars.len() <= 16 || i % (bars.len() / 8).max(1) == 0 {
                                text.tick x=(format!("{:.1}", x + bar_width / 2.0)) y=(HEIGHT - 8.0) text-anchor="middle" { (bar.label) }
                            }
                        }
                    }
                }
                ul.legend { @for s in series { li { span class={ "swatch " (s.class) } {} (s.name) } } }
                details {
                    summary { "The numbers" }
                    table {
                        thead { tr { th scope="col" { "" } @for s in series { th scope="col" { (s.name) " (" (unit) ")" } } } }
                        tbody { @for bar in bars { tr { th scope="row" { (bar.label) } @for v in &bar.parts { td { (number(*v)) } } } } }
                    }
                }
            }
        }
    }
}

/// Each part of a bar as (class, top, height), bottom up.
fn stack(bar: &Bar, series: &[Series], scale: f64) -> Vec<(&'static str, f64, f64)> {
    let mut y = HEIGHT - BOTTOM;
    bar.parts
        .iter()
        .zip(series)
        .map(|(value, s)| {
            let h = value * scale;
            y -= h;
            (s.class, y, h)
        })
        .collect()
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_text_alternative_and_its_numbers() {
        let series = [Series { name: "succeeded", class: "good" }, Series { name: "failed", class: "bad" }];
        let bars = vec![
            Bar { label: "11-30".into(), parts: vec![3.0, 1.0] },
            Bar { label: "12-01".into(), parts: vec![5.0, 0.0] },
        ];
        let page = stacked("Jobs per day", "jobs", &series, &bars).into_string();
        assert!(page.contains(r#"role="img""#) && page.contains("highest 5 jobs"), "{page}");
        assert!(page.contains("<th scope=\"row\">11-30</th><td>3</td><td>1</td>"), "{page}");
        assert_eq!(page.matches("<rect").count(), 4);
    }
}
