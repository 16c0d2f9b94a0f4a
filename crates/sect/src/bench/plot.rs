//! SVG charts of a bench run (plotters).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::Failure;

/// One bar per case, horizontal, with an optional reference line (the
/// physical limit or the baseline) drawn across.
pub fn bars(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
    limit: Option<(&str, f64)>,
) -> Result<(), Failure> {
    let fail = |e: &dyn std::fmt::Display| Failure::new(format!("plot {}: {e}", path.display()));
    if bars.is_empty() {
        return Ok(());
    }
    let height = 90 + 34 * bars.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let max = bars
        .iter()
        .map(|(_, v)| *v)
        .chain(limit.map(|(_, v)| v))
        .fold(0.0f64, f64::max)
        * 1.15;
    let n = bars.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(250)
        .build_cartesian_2d(0.0..max.max(1e-9), 0.0..n + 0.4)
        .map_err(|e| fail(&e))?;
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (y - 0.5).round();
            if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[labels.len() - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc(unit)
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let y = n - 1.0 - i as f64;
            Rectangle::new([(0.0, y + 0.15), (*v, y + 0.85)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let y = n - 1.0 - i as f64;
            Text::new(format!("{v:.2}"), (*v, y + 0.35), ("sans-serif", 13))
        }))
        .map_err(|e| fail(&e))?;
    if let Some((label, value)) = limit {
        chart
            .draw_series(LineSeries::new(
                [(value, 0.0), (value, n)],
                RED.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series([Text::new(
                format!("{label}: {value:.2}"),
                (value, n + 0.35),
                ("sans-serif", 13)
                    .into_font()
                    .color(&RED)
                    .pos(Pos::new(HPos::Right, VPos::Top)),
            )])
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
