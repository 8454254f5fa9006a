//! The training-curves figure of a run: loss, test Dice per region, mean synthetic weight, and the
//! stage boundary.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::runner::records::EpochRecord;
use dsma_data::error::Result;
use dsma_data::slice_figure::draw_png;

/// Draws `records` into a PNG at `path`; `stage1_epochs` marks the stage switch.
pub fn draw(path: &Path, records: &[EpochRecord], stage1_epochs: usize) -> Result<()> {
    draw_png(path, (1000, 700), |root| {
        root.fill(&WHITE).map_err(|x| x.to_string())?;
        let (top, bottom) = root.split_vertically(350);
        let axes = Axes {
            max_epoch: records.last().map(|r| r.epoch).unwrap_or(1).max(1) as f64,
            boundary: stage1_epochs as f64 + 0.5,
        };
        loss_panel(&top, records, &axes)?;
        dice_panel(&bottom, records, &axes)
    })
}

/// The x range of both panels and where the stage switch is drawn.
struct Axes {
    max_epoch: f64,
    boundary: f64,
}

/// The training loss per epoch with the stage boundary.
fn loss_panel<DB: DrawingBackend>(
    top: &DrawingArea<DB, Shift>,
    records: &[EpochRecord],
    axes: &Axes,
) -> std::result::Result<(), String> {
    let e = |err: &dyn std::fmt::Display| err.to_string();
    let (max_epoch, boundary) = (axes.max_epoch, axes.boundary);
    let max_loss = records
        .iter()
        .map(|r| r.loss)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let mut c = ChartBuilder::on(top)
        .caption("training loss (weighted soft Dice)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_epoch, 0.0..max_loss)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|x| e(&x))?;
    c.draw_series(LineSeries::new(
        records.iter().map(|r| (r.epoch as f64, r.loss)),
        &BLACK,
    ))
    .map_err(|x| e(&x))?
    .label("loss")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    c.draw_series(LineSeries::new(
        vec![(boundary, 0.0), (boundary, max_loss)],
        RGBColor(120, 120, 120).stroke_width(1),
    ))
    .map_err(|x| e(&x))?
    .label("stage 1 | stage 2")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(120, 120, 120)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;

    Ok(())
}

/// Test Dice per region (points where evaluated) and the mean synthetic weight.
fn dice_panel<DB: DrawingBackend>(
    bottom: &DrawingArea<DB, Shift>,
    records: &[EpochRecord],
    axes: &Axes,
) -> std::result::Result<(), String> {
    let e = |err: &dyn std::fmt::Display| err.to_string();
    let (max_epoch, boundary) = (axes.max_epoch, axes.boundary);
    let mut d = ChartBuilder::on(bottom)
        .caption(
            "test Dice per region and mean synthetic weight",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_epoch, 0.0..1.0)
        .map_err(|x| e(&x))?;
    d.configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|x| e(&x))?;
    let colours = [
        ("WT", RGBColor(0, 150, 0)),
        ("TC", RGBColor(200, 0, 0)),
        ("ET", RGBColor(230, 180, 0)),
        ("AVE", RGBColor(0, 0, 0)),
    ];
    for (i, (name, colour)) in colours.iter().enumerate() {
        let pts: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| r.test_dice.map(|t| (r.epoch as f64, t[i])))
            .filter(|(_, v)| v.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let colour = *colour;
        d.draw_series(LineSeries::new(pts.clone(), colour))
            .map_err(|x| e(&x))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        d.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(|x| e(&x))?;
    }
    let weights: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| r.mean_weight.map(|w| (r.epoch as f64, w)))
        .collect();
    if !weights.is_empty() {
        d.draw_series(LineSeries::new(weights, BLUE.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label("mean synthetic weight")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    }
    d.draw_series(LineSeries::new(
        vec![(boundary, 0.0), (boundary, 1.0)],
        RGBColor(120, 120, 120),
    ))
    .map_err(|x| e(&x))?;
    d.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}
