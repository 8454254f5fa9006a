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

/// Draws a MAS run's `weighter.json` (one entry per stage-2 epoch: η, θ, β, the synthetic scores
/// and weights) at `path`: scores over the band η ± θ and its edges, then every sample's weight.
pub fn plot_history(path: &Path, history: &serde_json::Value, title: &str) -> Result<bool> {
    let epochs = history.as_array().cloned().unwrap_or_default();
    if epochs.is_empty() || epochs[0].get("eta").is_none() {
        return Ok(false);
    }
    let mas = MasHistory::of(&epochs);
    draw_png(path, (1100, 800), |root| {
        root.fill(&WHITE).map_err(|x| x.to_string())?;
        let (top, bottom) = root.split_vertically(400);
        scores_panel(&top, &mas, title)?;
        weights_panel(&bottom, &mas)
    })?;
    Ok(true)
}

/// What `weighter.json` of MAS holds per stage-2 epoch: η, θ, β, the synthetic scores and weights.
struct MasHistory {
    /// (η, θ, β) per epoch.
    band: Vec<(f64, f64, f64)>,
    scores: Vec<Vec<f64>>,
    weights: Vec<Vec<f64>>,
    /// Per epoch, indices of samples known to be corrupted (a study's `train.synthesis.corrupt`),
    /// drawn red; a weight line takes its first epoch's colour (with `regenerate` the j-th
    /// sample of each epoch is a new one).
    corrupted: Vec<Vec<usize>>,
}

impl MasHistory {
    fn of(epochs: &[serde_json::Value]) -> Self {
        let get = |e: &serde_json::Value, k: &str| e[k].as_f64().unwrap_or(f64::NAN);
        let series = |k: &str| -> Vec<Vec<f64>> {
            epochs
                .iter()
                .map(|e| {
                    e[k].as_array()
                        .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
                        .unwrap_or_default()
                })
                .collect()
        };
        MasHistory {
            band: epochs
                .iter()
                .map(|ep| (get(ep, "eta"), get(ep, "theta"), get(ep, "beta")))
                .collect(),
            scores: series("scores"),
            weights: series("weights"),
            corrupted: epochs
                .iter()
                .map(|e| {
                    e["corrupted"]
                        .as_array()
                        .map(|v| {
                            v.iter()
                                .filter_map(|x| x.as_u64())
                                .map(|x| x as usize)
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect(),
        }
    }

    /// The x range: stage-2 epochs 0..k centred on integers.
    fn x_range(&self) -> std::ops::Range<f64> {
        -0.5..self.band.len() as f64 - 0.5
    }
}

/// Integer epoch labels (stage-2 epochs are whole numbers; ticks between them stay blank).
fn epoch_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// Synthetic scores per epoch over the band η ± θ and its edges η ± (θ + β).
fn scores_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    mas: &MasHistory,
    title: &str,
) -> std::result::Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let mut c = ChartBuilder::on(area)
        .caption(
            format!("{title}: synthetic scores vs η ± θ (± β)"),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(mas.x_range(), 0.0..1.0)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("stage-2 epoch")
        .y_desc("Dice")
        .x_labels(mas.band.len().clamp(2, 20))
        .x_label_formatter(&epoch_label)
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (eta, theta, _)) in mas.band.iter().enumerate() {
        let i = i as f64;
        c.draw_series(std::iter::once(Rectangle::new(
            [(i - 0.4, eta - theta), (i + 0.4, eta + theta)],
            RGBColor(0, 160, 0).mix(0.25).filled(),
        )))
        .map_err(|x| e(&x))?;
    }
    c.draw_series(LineSeries::new(
        mas.band.iter().enumerate().map(|(i, b)| (i as f64, b.0)),
        RGBColor(0, 120, 0).stroke_width(2),
    ))
    .map_err(|x| e(&x))?
    .label("η (mean real score), band η ± θ")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(0, 120, 0)));
    for sign in [-1.0, 1.0] {
        let edge = c
            .draw_series(LineSeries::new(
                mas.band
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (i as f64, b.0 + sign * (b.1 + b.2))),
                RGBColor(200, 0, 0),
            ))
            .map_err(|x| e(&x))?;
        if sign > 0.0 {
            edge.label("η ± (θ + β): weight 0 beyond")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(200, 0, 0)));
        }
    }
    for (i, s) in mas.scores.iter().enumerate() {
        c.draw_series(s.iter().enumerate().map(|(j, v)| {
            let bad = mas.corrupted.get(i).is_some_and(|c| c.contains(&j));
            let colour = if bad { RED } else { BLACK };
            Circle::new((i as f64, *v), 2, colour.filled())
        }))
        .map_err(|x| e(&x))?;
    }
    // Below the plot area's lower edge scores are rare (Dice near 0): keep the legend there.
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// The weight of every synthetic sample across epochs, one line per sample.
fn weights_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    mas: &MasHistory,
) -> std::result::Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let mut d = ChartBuilder::on(area)
        .caption(
            "weight of every synthetic sample (one line per sample)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(mas.x_range(), 0.0..1.05)
        .map_err(|x| e(&x))?;
    d.configure_mesh()
        .x_desc("stage-2 epoch")
        .y_desc("weight")
        .x_labels(mas.band.len().clamp(2, 20))
        .x_label_formatter(&epoch_label)
        .draw()
        .map_err(|x| e(&x))?;
    let n = mas.weights.iter().map(Vec::len).max().unwrap_or(0);
    let first: &[usize] = mas.corrupted.first().map_or(&[], |c| c.as_slice());
    let marked = mas.corrupted.iter().any(|c| !c.is_empty());
    for j in 0..n {
        // With corrupted samples marked: clean in blue, corrupted in red (offset so ties show).
        let (colour, dy) = match (marked, first.contains(&j)) {
            (false, _) => (Palette99::pick(j).mix(0.7), 0.0),
            (true, false) => (BLUE.mix(0.6), 0.0),
            (true, true) => (RED.mix(0.8), -0.01),
        };
        let series = d
            .draw_series(LineSeries::new(
                mas.weights
                    .iter()
                    .enumerate()
                    .filter_map(|(i, w)| w.get(j).map(|v| (i as f64, *v + dy))),
                colour,
            ))
            .map_err(|x| e(&x))?;
        let first_of = |want: bool| (0..n).find(|k| first.contains(k) == want) == Some(j);
        if marked && first_of(true) {
            series
                .label("corrupted samples")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        } else if marked && first_of(false) {
            series
                .label("clean samples")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        }
    }
    if marked {
        d.configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    Ok(())
}
