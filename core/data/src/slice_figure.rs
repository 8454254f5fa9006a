//! PNG figures of axial slices with label overlays (phantom preview, DTSS Fig. 3, segmentation Fig. 5).

use std::path::Path;
use std::sync::Once;

use ndarray::{Array2, ArrayView3};
use plotters::prelude::*;

use crate::error::{CoreError, Result};
use crate::labels::LabelConvention;

/// How a panel shows its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    /// No labels.
    None,
    /// Translucent fill per tumour class.
    Fill,
    /// One-pixel outline per tumour class.
    Contour,
}

/// One image tile: a 2-D slice in display orientation (row 0 at the top) and optional labels.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption drawn above the tile.
    pub title: String,
    /// Intensities; rows × columns.
    pub slice: Array2<f32>,
    /// Labels with the same shape, if any.
    pub labels: Option<Array2<u8>>,
    /// How to draw `labels`.
    pub overlay: Overlay,
}

/// Axial slice `z` of a `[z, y, x]` volume in radiological display orientation
/// (anterior at the top, patient's right on the viewer's left, for RAS-oriented data).
pub fn axial<T: Copy>(volume: ArrayView3<T>, z: usize) -> Array2<T> {
    let plane = volume.index_axis(ndarray::Axis(0), z);
    let (ny, nx) = plane.dim();
    Array2::from_shape_fn((ny, nx), |(r, c)| plane[[ny - 1 - r, nx - 1 - c]])
}

/// The colour of a tumour label: oedema green, necrosis red, enhancing yellow.
pub fn label_colour(label: u8, convention: LabelConvention) -> Option<RGBColor> {
    if label == 0 {
        None
    } else if label == convention.oedema() {
        Some(RGBColor(40, 200, 70))
    } else if label == convention.necrosis() {
        Some(RGBColor(230, 40, 40))
    } else {
        Some(RGBColor(250, 220, 30))
    }
}

static FONT: Once = Once::new();

/// Registers the embedded DejaVu Sans as plotters' "sans-serif" (idempotent).
pub fn ensure_font() {
    FONT.call_once(|| {
        // The font is embedded, so registration cannot fail for lack of a system font.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Robust display window: the 0.5th and 99.5th percentiles of the non-zero values.
fn window(slice: &Array2<f32>) -> (f32, f32) {
    let mut v: Vec<f32> = slice
        .iter()
        .copied()
        .filter(|x| *x != 0.0 && x.is_finite())
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.005).min(0.0), at(0.995));
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

/// Renders `panels` in a grid of `columns`, each pixel drawn `scale`×`scale`, to a PNG at `path` (atomic).
pub fn render(
    path: &Path,
    panels: &[Panel],
    columns: usize,
    scale: u32,
    convention: LabelConvention,
) -> Result<()> {
    ensure_font();
    let columns = columns.max(1);
    let (rows_px, cols_px) = panels.iter().fold((1usize, 1usize), |(r, c), p| {
        (r.max(p.slice.nrows()), c.max(p.slice.ncols()))
    });
    let caption = 22u32;
    let tile_w = cols_px as u32 * scale + 8;
    let tile_h = rows_px as u32 * scale + caption + 8;
    let grid_rows = panels.len().div_ceil(columns) as u32;
    let legend = panels
        .iter()
        .any(|p| p.labels.is_some() && p.overlay != Overlay::None);
    let panels_h = tile_h * grid_rows.max(1);
    let (w, h) = (
        tile_w * columns as u32,
        panels_h + if legend { LEGEND_HEIGHT } else { 0 },
    );
    draw_png(path, (w, h), |root| {
        root.fill(&BLACK).map_err(|e| e.to_string())?;
        let font = ("sans-serif", 16).into_font().color(&WHITE);
        for (i, p) in panels.iter().enumerate() {
            let x0 = (i % columns) as u32 * tile_w + 4;
            let y0 = (i / columns) as u32 * tile_h + 4;
            root.draw_text(&p.title, &font, (x0 as i32, y0 as i32))
                .map_err(|e| e.to_string())?;
            let (lo, hi) = window(&p.slice);
            let (nr, nc) = p.slice.dim();
            for r in 0..nr {
                for c in 0..nc {
                    let g = ((p.slice[[r, c]] - lo) / (hi - lo)).clamp(0.0, 1.0);
                    let g8 = (g * 255.0) as u8;
                    let mut colour = RGBColor(g8, g8, g8);
                    if let Some(labels) = &p.labels {
                        let l = labels[[r, c]];
                        if let Some(lc) = label_colour(l, convention) {
                            let edge = || {
                                let n = |rr: isize, cc: isize| {
                                    rr < 0
                                        || cc < 0
                                        || rr >= nr as isize
                                        || cc >= nc as isize
                                        || labels[[rr as usize, cc as usize]] != l
                                };
                                let (ri, ci) = (r as isize, c as isize);
                                n(ri - 1, ci) || n(ri + 1, ci) || n(ri, ci - 1) || n(ri, ci + 1)
                            };
                            colour = match p.overlay {
                                Overlay::None => colour,
                                Overlay::Fill => blend(colour, lc, 0.45),
                                Overlay::Contour if edge() => lc,
                                Overlay::Contour => colour,
                            };
                        }
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = (x0 + c as u32 * scale + dx) as i32;
                            let py = (y0 + caption + r as u32 * scale + dy) as i32;
                            root.draw_pixel((px, py), &colour)
                                .map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
        }
        if legend {
            draw_legend(root, panels_h as i32 + 6, convention)?;
        }
        Ok(())
    })
}

/// Height of the label-colour legend under the panels.
const LEGEND_HEIGHT: u32 = 28;

/// One colour square and name per tumour class, in the dataset's label values.
fn draw_legend(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    y: i32,
    convention: LabelConvention,
) -> std::result::Result<(), String> {
    let font = ("sans-serif", 15).into_font().color(&WHITE);
    let classes = [
        ("oedema", convention.oedema()),
        ("necrosis / non-enhancing", convention.necrosis()),
        ("enhancing", convention.enhancing()),
    ];
    let mut x = 6;
    for (name, label) in classes {
        let colour = label_colour(label, convention).unwrap_or(WHITE);
        root.draw(&Rectangle::new([(x, y), (x + 14, y + 14)], colour.filled()))
            .map_err(|e| e.to_string())?;
        let text = format!("{label} {name}");
        root.draw_text(&text, &font, (x + 20, y))
            .map_err(|e| e.to_string())?;
        x += 20 + 9 * text.chars().count() as i32 + 24;
    }
    Ok(())
}

/// Draws a PNG of `size` pixels at `path` atomically: `draw` paints a temp file that is then renamed.
pub fn draw_png<F>(path: &Path, size: (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(
        &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> std::result::Result<(), String>,
{
    ensure_font();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| e.to_string())
    })();
    if let Err(problem) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::Figure {
            path: path.to_path_buf(),
            problem,
        });
    }
    std::fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))
}

fn blend(a: RGBColor, b: RGBColor, alpha: f32) -> RGBColor {
    let m = |x: u8, y: u8| (x as f32 * (1.0 - alpha) + y as f32 * alpha) as u8;
    RGBColor(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

/// Index of the axial slice with the most tumour voxels (the middle slice when there is none).
pub fn slice_with_most_tumour(label: ArrayView3<u8>) -> usize {
    let counts: Vec<usize> = label
        .outer_iter()
        .map(|p| p.iter().filter(|&&v| v != 0).count())
        .collect();
    match counts.iter().enumerate().max_by_key(|(_, &c)| c) {
        Some((z, &c)) if c > 0 => z,
        _ => label.dim().0 / 2,
    }
}

/// The axial slice (z) where `b` differs most from `a`: summed absolute intensity differences
/// over every modality plus the count of voxels whose label differs (0 for an empty volume).
pub fn most_changed_axial_slice(a: &crate::volume::Case, b: &crate::volume::Case) -> usize {
    let diff = |z: usize| -> f64 {
        let (ra, rb) = (
            a.image.index_axis(ndarray::Axis(1), z),
            b.image.index_axis(ndarray::Axis(1), z),
        );
        let intensity: f64 = ra
            .iter()
            .zip(rb.iter())
            .map(|(x, y)| (x - y).abs() as f64)
            .sum();
        let labels = a
            .label
            .index_axis(ndarray::Axis(0), z)
            .iter()
            .zip(b.label.index_axis(ndarray::Axis(0), z).iter())
            .filter(|(x, y)| x != y)
            .count();
        intensity + labels as f64
    };
    (0..a.label.dim().0)
        .max_by(|&p, &q| diff(p).total_cmp(&diff(q)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelConvention;
    use crate::volume::{Case, Grid};

    #[test]
    fn the_most_changed_slice_counts_intensities_and_labels() {
        let a = Case {
            id: "a".into(),
            image: ndarray::Array4::zeros((4, 5, 3, 3)),
            label: ndarray::Array3::zeros((5, 3, 3)),
            grid: Grid::axis_aligned([3, 3, 5], [1.0; 3]),
            convention: LabelConvention::Brats2019,
        };
        let mut b = a.clone();
        // z = 1: one label differs (1); z = 3: intensities differ by 0.25 in two voxels (0.5).
        b.label[[1, 0, 0]] = 2;
        b.image[[0, 3, 1, 1]] = 0.25;
        b.image[[2, 3, 0, 1]] = -0.25;
        assert_eq!(most_changed_axial_slice(&a, &b), 1);
        // One more intensity change at z = 3 (0.75): 1.25 > 1.
        b.image[[1, 3, 2, 2]] = 0.75;
        assert_eq!(most_changed_axial_slice(&a, &b), 3);
    }
}
