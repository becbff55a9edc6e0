//! SVG charts of the benchmark's and the simulator's results (plotters, SVG backend only):
//! push throughput by concurrency per backend, latency distributions and pull rates; and the
//! simulator's report as one self-contained HTML page with its charts inline.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::bench::BackendResults;
use crate::error::{Error, Result};
use crate::report::Report;
use crate::stats::Latency;

/// Chart size in pixels.
const SIZE: (u32, u32) = (760, 420);

/// A named line of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A named set of bars, one value per category.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub name: String,
    pub values: Vec<f64>,
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::Chart(e.to_string())
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(11, 92, 173),
        RGBColor(207, 34, 46),
        RGBColor(26, 127, 55),
        RGBColor(154, 103, 0),
        RGBColor(130, 80, 223),
        RGBColor(0, 128, 128),
        RGBColor(87, 96, 106),
        RGBColor(191, 57, 137),
    ];
    COLORS[i % COLORS.len()]
}

fn upper(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 { max * 1.1 } else { 1.0 }
}

/// A line chart; with `x_names`, x is a category index named by them.
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    x_names: Option<&[&str]>,
) -> Result<String> {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (x_min, x_max, y_max) = points
        .fold((f64::INFINITY, f64::NEG_INFINITY, 0.0f64), |(a, b, c), &(x, y)| {
            (a.min(x), b.max(x), c.max(y))
        });
    let (x_min, x_max) = if x_min.is_finite() { (x_min, x_max.max(x_min + 1.0)) } else { (0.0, 1.0) };
    let pad = (x_max - x_min) * 0.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(70)
            .build_cartesian_2d((x_min - pad)..(x_max + pad), 0.0..upper(y_max))
            .map_err(chart_error)?;
        let name_of = |x: &f64| match x_names {
            Some(names) if (x - x.round()).abs() < 1e-6 && *x >= 0.0 => {
                names.get(x.round() as usize).map_or_else(String::new, |n| (*n).to_owned())
            }
            Some(_) => String::new(),
            None => format!("{x}"),
        };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc).y_desc(y_desc).x_label_formatter(&name_of);
        if let Some(names) = x_names {
            mesh.x_labels(names.len() * 2 + 1);
        }
        mesh.draw().map_err(chart_error)?;
        for (i, s) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(chart_error)?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(chart_error)?;
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// A grouped bar chart: one group per category, one bar per [`Bars`] in each group.
pub fn bar_chart(title: &str, y_desc: &str, categories: &[&str], bars: &[Bars]) -> Result<String> {
    let y_max = bars.iter().flat_map(|b| b.values.iter().copied()).fold(0.0f64, f64::max);
    let groups = categories.len().max(1) as f64;
    let width = 0.8 / bars.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..groups, 0.0..upper(y_max))
            .map_err(chart_error)?;
        let name_of = |x: &f64| {
            let centre = x - x.floor();
            if (centre - 0.5).abs() < 1e-6 {
                categories.get(x.floor() as usize).map_or_else(String::new, |n| (*n).to_owned())
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(categories.len() * 2 + 1)
            .x_label_formatter(&name_of)
            .y_desc(y_desc)
            .draw()
            .map_err(chart_error)?;
        for (i, b) in bars.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(b.values.iter().enumerate().map(|(g, &v)| {
                    let left = g as f64 + 0.1 + i as f64 * width;
                    Rectangle::new([(left, 0.0), (left + width * 0.95, v)], c.filled())
                }))
                .map_err(chart_error)?
                .label(b.name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        if !bars.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

const PERCENTILES: [&str; 4] = ["p50", "p95", "p99", "max"];

fn latency_points(l: &Latency) -> Vec<(f64, f64)> {
    [l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms].iter().enumerate().map(|(i, &v)| (i as f64, v)).collect()
}

/// The benchmark's charts as `(file name, SVG)`: throughput by concurrency, latency
/// distributions and pull rates.
pub fn bench_charts(results: &[BackendResults]) -> Result<Vec<(&'static str, String)>> {
    let throughput: Vec<Series> = results
        .iter()
        .map(|r| Series {
            name: r.backend.clone(),
            points: r.push.iter().map(|c| (c.devices as f64, c.changes_per_sec)).collect(),
        })
        .collect();
    let mut latency = Vec::new();
    for r in results {
        for c in &r.push {
            latency.push(Series {
                name: format!("{} push, {} devices", r.backend, c.devices),
                points: latency_points(&c.latency),
            });
        }
        latency.push(Series {
            name: format!("{} write-to-pull, idle", r.backend),
            points: latency_points(&r.write_to_pull_idle),
        });
        latency.push(Series {
            name: format!("{} write-to-pull, loaded", r.backend),
            points: latency_points(&r.write_to_pull_loaded),
        });
    }
    let pulls: Vec<Bars> = results
        .iter()
        .map(|r| Bars {
            name: r.backend.clone(),
            values: vec![
                r.initial_sync.records_per_sec,
                r.incremental_delta.records_per_sec,
                r.incremental_full.records_per_sec,
            ],
        })
        .collect();
    Ok(vec![
        (
            "bench-throughput.svg",
            line_chart(
                "Push throughput by concurrency",
                "concurrent devices",
                "changes/s",
                &throughput,
                None,
            )?,
        ),
        (
            "bench-latency.svg",
            line_chart("Latency distribution", "percentile", "ms", &latency, Some(&PERCENTILES))?,
        ),
        (
            "bench-pull-rates.svg",
            bar_chart(
                "Pull rates",
                "records/s",
                &["initial sync", "incremental, delta", "incremental, full"],
                &pulls,
            )?,
        ),
    ])
}

fn label(report: &Report) -> String {
    match &report.backend {
        Some(backend) => format!("{} on {backend}", report.scenario.kind),
        None => report.scenario.kind.to_string(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The simulator's reports as one self-contained HTML page: latency distributions, outcomes
/// and rates as inline SVG, and each report's table.
pub fn report_html(reports: &[Report]) -> Result<String> {
    let mut latency = Vec::new();
    for r in reports {
        latency.push(Series { name: format!("{} push", label(r)), points: latency_points(&r.push_latency) });
        latency.push(Series { name: format!("{} pull", label(r)), points: latency_points(&r.pull_latency) });
    }
    let outcomes: Vec<Bars> = reports
        .iter()
        .map(|r| {
            let c = &r.changes;
            Bars {
                name: label(r),
                values: [c.applied, c.client_won, c.server_won, c.merged, c.manual_required, c.invalid]
                    .iter()
                    .map(|&n| n as f64)
                    .collect(),
            }
        })
        .collect();
    let rates: Vec<Bars> = reports
        .iter()
        .map(|r| Bars {
            name: label(r),
            values: vec![r.changes.per_sec, r.initial_sync.map_or(0.0, |s| s.records_per_sec)],
        })
        .collect();
    let charts = [
        line_chart("Latency distribution", "percentile", "ms", &latency, Some(&PERCENTILES))?,
        bar_chart(
            "Acknowledged changes by outcome",
            "changes",
            &["applied", "client_won", "server_won", "merged", "manual", "invalid"],
            &outcomes,
        )?,
        bar_chart("Rates", "per second", &["changes acknowledged", "initial sync records"], &rates)?,
    ];
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>syncforge simulation report</title>\n<style>\n\
         body{font-family:system-ui,sans-serif;margin:2em auto;max-width:820px;color:#1b1f24}\
         svg{max-width:100%;height:auto;display:block;margin:1em 0}pre{background:#f5f6f8;padding:1em;overflow-x:auto}\
         .pass{color:#1a7f37}.fail{color:#cf222e}\n</style>\n</head>\n<body>\n<h1>Simulation report</h1>\n",
    );
    for r in reports {
        let verdict = if r.passed {
            "<span class=\"pass\">passed</span>"
        } else {
            "<span class=\"fail\">FAILED</span>"
        };
        let _ =
            writeln!(html, "<h2>{}: {verdict}</h2>\n<pre>{}</pre>", escape(&label(r)), escape(&r.to_table()));
    }
    html.push_str("<h2>Charts</h2>\n");
    for chart in &charts {
        // The SVG backend writes a standalone document; inline it without its XML prolog.
        let body = chart.find("<svg").map_or(chart.as_str(), |i| &chart[i..]);
        html.push_str(body);
        html.push('\n');
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trimmed contents of the SVG's `<text>` elements.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>').and_then(|(_, rest)| rest.split_once("</text>")))
            .map(|(content, _)| content.trim().to_owned())
            .collect()
    }

    #[test]
    fn a_line_chart_has_each_series_and_its_points() {
        let series = [
            Series { name: "sqlite".into(), points: vec![(1.0, 900.0), (8.0, 2400.0), (32.0, 2600.0)] },
            Series { name: "postgres".into(), points: vec![(1.0, 700.0), (8.0, 3100.0), (32.0, 4200.0)] },
        ];
        let svg = line_chart("Push throughput", "devices", "changes/s", &series, None).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
        let texts = texts(&svg);
        for name in ["sqlite", "postgres", "Push throughput", "changes/s"] {
            assert!(texts.iter().any(|t| t == name), "{name} in {texts:?}");
        }
        for colour in ["#0B5CAD", "#CF222E"] {
            let lines = svg
                .split("<polyline")
                .skip(1)
                .filter(|p| p.contains(&format!("stroke=\"{colour}\"")))
                .count();
            assert_eq!(lines, 2, "a line and a legend mark in {colour}");
        }
        assert_eq!(svg.matches("<circle").count(), 6, "one marker per point");
    }

    #[test]
    fn a_bar_chart_has_a_bar_per_value_and_named_groups() {
        let bars = [
            Bars { name: "sqlite".into(), values: vec![10.0, 20.0] },
            Bars { name: "postgres".into(), values: vec![30.0, 0.0] },
        ];
        let svg = bar_chart("Pull rates", "records/s", &["initial", "incremental"], &bars).unwrap();
        let texts = texts(&svg);
        for name in ["initial", "incremental", "sqlite", "postgres", "Pull rates"] {
            assert!(texts.iter().any(|t| t == name), "{name} in {texts:?}");
        }
        // Four bars and two legend swatches, beside the background and the plot frame.
        let filled = svg.matches("fill=\"#0B5CAD\"").count() + svg.matches("fill=\"#CF222E\"").count();
        assert_eq!(filled, 4 + 2, "{svg}");
    }
}
