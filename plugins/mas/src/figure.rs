//! The weight function drawn like the paper's Fig. 4, with u1, u2, q1, q2 and η marked.

use std::path::Path;

use dsma_data::slice_figure::draw_png;
use dsma_data::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::WeightFunction;

/// Draws w(L) over L ∈ [0, 1] to a PNG at `path` (written atomically).
pub fn plot_weight_function(path: &Path, f: &WeightFunction, samples: &[(f64, f64)]) -> Result<()> {
    draw_png(path, (900, 560), |root| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "MAS weight function  (η = {:.3}, θ = {:.3}, β = {:.3})",
                    f.eta, f.theta, f.beta
                ),
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..1f64, -0.05f64..1.25f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("segmentation accuracy L (Dice) of a synthetic case")
            .y_desc("loss weight w")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| e.to_string())?;
        // The full parabola of eq. 10 (thin), then w itself (thick).
        let n = 800;
        let xs = (0..=n).map(|i| i as f64 / n as f64);
        let parabola = xs
            .clone()
            .map(|l| (l, f.a() * (l - f.q1()) * (l - f.q2())))
            .filter(|(_, y)| *y >= -0.05 && *y <= 1.25);
        chart
            .draw_series(LineSeries::new(
                parabola,
                RGBColor(180, 180, 220).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                xs.map(|l| (l, f.weight(l))),
                RGBColor(30, 60, 200).stroke_width(3),
            ))
            .map_err(|e| e.to_string())?
            .label("w(L)")
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    RGBColor(30, 60, 200).stroke_width(3),
                )
            });
        draw_marks(&mut chart, f)?;
        if !samples.is_empty() {
            chart
                .draw_series(
                    samples
                        .iter()
                        .map(|&(l, w)| Circle::new((l, w), 4, RGBColor(240, 140, 20).filled())),
                )
                .map_err(|e| e.to_string())?
                .label("synthetic cases")
                .legend(|(x, y)| Circle::new((x + 10, y), 4, RGBColor(240, 140, 20).filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// The chart of [`plot_weight_function`].
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Dashed verticals at q1, u1, η, u2, q2 with their names, and dots where w reaches 0 or 1.
fn draw_marks<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    f: &WeightFunction,
) -> std::result::Result<(), String> {
    let marks = [
        ("q1", f.q1(), 0.0),
        ("u1", f.u1(), 1.0),
        ("η", f.eta, 1.0),
        ("u2", f.u2(), 1.0),
        ("q2", f.q2(), 0.0),
    ];
    for (name, x, y) in marks {
        if !(0.0..=1.0).contains(&x) {
            continue;
        }
        let colour = if name == "η" {
            RGBColor(200, 40, 40)
        } else {
            BLACK
        };
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x, -0.05), (x, 1.2)],
                4,
                4,
                colour.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        if name != "η" {
            chart
                .draw_series(std::iter::once(Circle::new((x, y), 5, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(std::iter::once(Text::new(
                name.to_string(),
                (x + 0.008, 1.17),
                ("sans-serif", 18).into_font().color(&colour),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
