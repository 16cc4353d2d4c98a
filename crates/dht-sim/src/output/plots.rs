//! SVG plots of a report: hop histogram, lookup latency CDF, success and traffic over time; and
//! the line charts `dht compare` draws. Plots are drawn with plotters' SVG backend, whose text
//! layout needs no font files.

use std::path::{Path, PathBuf};

use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::output::report::Report;

/// Pixel size of every plot.
pub const PLOT_SIZE: (u32, u32) = (800, 500);

/// Colours for successive series.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(255, 187, 120),
];

/// Width of the legend panel to the right of a line chart with many series, in pixels.
const LEGEND_WIDTH: u32 = 210;

/// Series above which a line chart puts its legend in a panel beside the plot rather than over
/// it.
const LEGEND_INSIDE_MAX: usize = 4;

/// One named line of a chart; `dashed` draws it as points joined by a thin line (used for a
/// paper's prediction beside a measurement).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
    /// Draw as a prediction (thin, with markers) rather than a measurement.
    pub predicted: bool,
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Draws a line chart of `series` into `path`, with a log10 x axis if `log_x`.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> PlotResult {
    line_chart_axes(path, title, x_label, y_label, series, log_x, false)
}

/// Draws a line chart of `series` into `path`, with log10 axes where asked. On a log axis,
/// points that are not positive are left out. A prediction series takes the colour of the
/// measured series before it, so each paper's curve sits beside its measurement in one colour.
pub fn line_chart_axes(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> PlotResult {
    let keep = |&(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!log_x || x > 0.0) && (!log_y || y > 0.0)
    };
    let series: Vec<Series> = series
        .iter()
        .map(|s| Series {
            points: s.points.iter().copied().filter(keep).collect(),
            ..s.clone()
        })
        .collect();
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1) = (1.0, 2.0);
    }
    if x0 == x1 {
        // One x value: widen the range around it (by a factor on a log axis).
        (x0, x1) = if log_x {
            (x0 / 2.0, x1 * 2.0)
        } else {
            (x0 - 1.0, x1 + 1.0)
        };
    } else if log_x {
        // A margin on each side, so end points and the axis labels of a narrow range show.
        (x0, x1) = (x0 / 1.5, x1 * 1.5);
    }
    let side = series.len() > LEGEND_INSIDE_MAX;
    let size = if side {
        (PLOT_SIZE.0 + LEGEND_WIDTH, PLOT_SIZE.1)
    } else {
        PLOT_SIZE
    };
    let whole = SVGBackend::new(path, size).into_drawing_area();
    whole.fill(&WHITE)?;
    let (root, legend) = whole.split_horizontally(PLOT_SIZE.0);
    if side {
        draw_legend(&legend, &series)?;
    }
    let x_lin = x0..x1;
    let x_log = (x0.max(1e-9)..x1).log_scale();
    if log_y {
        let y0 = if y0 > y1 { 1.0 } else { y0 / 1.5 };
        let y1 = if y1 <= 0.0 { 10.0 } else { y1 * 1.5 };
        let y = (y0.max(1e-9)..y1).log_scale();
        if log_x {
            draw_chart(&root, title, x_label, y_label, x_log, y, &series)?;
        } else {
            draw_chart(&root, title, x_label, y_label, x_lin, y, &series)?;
        }
    } else {
        // From zero, unless every value sits in the top half: then zoom on the spread, so
        // that success rates of 0.98 and 1.0 do not draw as one line.
        let y = if y1 <= 0.0 {
            0.0..1.0
        } else if y0 > 0.5 * y1 && y0 < y1 {
            let pad = (y1 - y0) * 0.25;
            (y0 - pad).max(0.0)..y1 + pad
        } else {
            0.0..y1 * 1.1
        };
        if log_x {
            draw_chart(&root, title, x_label, y_label, x_log, y, &series)?;
        } else {
            draw_chart(&root, title, x_label, y_label, x_lin, y, &series)?;
        }
    }
    whole.present()?;
    Ok(())
}

/// The legend of `series` as a column of samples and names in its own panel.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[Series],
) -> PlotResult {
    let mut y = 50i32;
    for (s, color) in series.iter().zip(colours(series)) {
        let line = vec![(8, y), (36, y)];
        if s.predicted {
            area.draw(&plotters::element::DashedPathElement::new(
                line,
                4,
                3,
                color.stroke_width(1),
            ))?;
            area.draw(&Circle::new((22, y), 3, color.stroke_width(1)))?;
        } else {
            area.draw(&PathElement::new(line, color.stroke_width(2)))?;
            area.draw(&Circle::new((22, y), 3, color.filled()))?;
        }
        area.draw(&Text::new(
            s.name.clone(),
            (42, y - 7),
            ("sans-serif", 14).into_font(),
        ))?;
        y += 20;
    }
    Ok(())
}

/// A tick label: whole numbers without decimals, thousands as `k`, others with up to four
/// decimals.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 && (v / 1000.0).fract().abs() < 1e-9 {
        format!("{:.0}k", v / 1000.0)
    } else if a >= 10.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        // Up to four decimals, trailing zeros dropped: 2.5, 0.75, 0.9925.
        let t = format!("{v:.4}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The colour of each series: a prediction takes the colour of the measured series before it.
fn colours(series: &[Series]) -> Vec<RGBColor> {
    let mut colour = 0usize;
    series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i > 0 && !s.predicted {
                colour += 1;
            }
            PALETTE[colour % PALETTE.len()]
        })
        .collect()
}

fn draw_chart<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    x: X,
    y: Y,
    series: &[Series],
) -> PlotResult
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    draw_series(&mut chart, series)?;
    if series.len() <= LEGEND_INSIDE_MAX {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
    }
    Ok(())
}

fn draw_series<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
) -> PlotResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (s, color) in series.iter().zip(colours(series)) {
        if s.predicted {
            chart
                .draw_series(DashedLineSeries::new(
                    s.points.iter().copied(),
                    5,
                    4,
                    color.stroke_width(1),
                ))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        } else {
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        if s.predicted {
            // Hollow markers: the paper's figure, not a measurement.
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.stroke_width(1))),
            )?;
        } else if s.points.len() <= 12 {
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )?;
        }
    }
    Ok(())
}

/// Draws a bar chart of `bins` (entry `i` is the count at `i`) into `path`.
pub fn histogram(path: &Path, title: &str, x_label: &str, bins: &[u64]) -> PlotResult {
    let root = SVGBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bins.len().max(1) as u32;
    let top = bins.iter().copied().max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0u32..n).into_segmented(), 0u64..top + top / 10 + 1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("count")
        .draw()?;
    chart.draw_series(
        Histogram::vertical(&chart)
            .style(PALETTE[0].filled())
            .margin(2)
            .data(bins.iter().enumerate().map(|(i, &c)| (i as u32, c))),
    )?;
    root.present()?;
    Ok(())
}

/// Writes the four plots of one report into `dir` and returns their paths.
pub fn write_report_plots(
    r: &Report,
    dir: &Path,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let name = |f: &str| dir.join(f);
    let mut out = Vec::new();
    let p = name("hops.svg");
    histogram(
        &p,
        &format!("{}: lookup hops ({} nodes)", r.overlay, r.nodes),
        "hops",
        &r.hop_histogram,
    )?;
    out.push(p);
    let p = name("latency_cdf.svg");
    line_chart(
        &p,
        &format!(
            "{}: lookup latency CDF (median RTT {:.0} ms)",
            r.overlay, r.network.median_rtt_ms
        ),
        "latency (ms)",
        "fraction of lookups",
        &[Series {
            name: "lookups".into(),
            points: r.latency_cdf.clone(),
            predicted: false,
        }],
        false,
    )?;
    out.push(p);
    let success: Vec<(f64, f64)> = r
        .time_series
        .iter()
        .filter(|b| b.lookups_done > 0)
        .map(|b| (b.t_s, b.lookups_succeeded as f64 / b.lookups_done as f64))
        .collect();
    let gets: Vec<(f64, f64)> = r
        .time_series
        .iter()
        .filter(|b| b.gets_done > 0)
        .map(|b| (b.t_s, b.gets_correct as f64 / b.gets_done as f64))
        .collect();
    let p = name("success.svg");
    let mut s = vec![Series {
        name: "lookup success".into(),
        points: success,
        predicted: false,
    }];
    if !gets.is_empty() {
        s.push(Series {
            name: "get success".into(),
            points: gets,
            predicted: false,
        });
    }
    line_chart(
        &p,
        &format!("{}: success over time", r.overlay),
        "seconds",
        "fraction",
        &s,
        false,
    )?;
    out.push(p);
    let width = r.time_series.get(1).map_or(1.0, |b| b.t_s).max(1e-9);
    let traffic: Vec<(f64, f64)> = r
        .time_series
        .iter()
        .filter(|b| b.live_nodes > 0 || b.bytes > 0)
        .map(|b| {
            let mean_msg = if b.messages > 0 {
                b.bytes as f64 / b.messages as f64
            } else {
                0.0
            };
            let maint = (b.bytes as f64 - b.workload_messages as f64 * mean_msg).max(0.0);
            (b.t_s, maint / width / (b.live_nodes.max(1)) as f64)
        })
        .collect();
    let p = name("maintenance.svg");
    line_chart(
        &p,
        &format!("{}: maintenance traffic", r.overlay),
        "seconds",
        "bytes / s / node",
        &[Series {
            name: "maintenance".into(),
            points: traffic,
            predicted: false,
        }],
        false,
    )?;
    out.push(p);
    Ok(out)
}
