//! PNG figures drawn with plotters' bitmap backend. Text uses DejaVu Sans compiled into
//! the crate (`fonts/`, Bitstream Vera license), so no system font library is needed.

use std::path::Path;
use std::sync::Once;

use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::PlotError;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../fonts/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the bundled DejaVu Sans is a valid TrueType font"));
    });
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes through a temporary file so that a failed drawing leaves nothing behind.
fn atomic<F>(path: &Path, draw: F) -> Result<(), PlotError>
where
    F: FnOnce(&Path) -> Result<(), PlotError>,
{
    register_font();
    crossomics_atomic::write_with(path, draw, |e| draw_err(path, e))
}

/// One panel per series (`name`, value per epoch; NaN values are skipped), stacked.
pub fn loss_curves(
    path: &Path,
    title: &str,
    series: &[(String, Vec<f64>)],
) -> Result<(), PlotError> {
    let series: Vec<&(String, Vec<f64>)> = series
        .iter()
        .filter(|(_, v)| v.iter().any(|x| x.is_finite()))
        .collect();
    if series.is_empty() {
        return Err(PlotError::Input("no finite values to plot".into()));
    }
    atomic(path, |tmp| {
        let height = 60 + 220 * series.len() as u32;
        let root = BitMapBackend::new(tmp, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let root = root
            .titled(title, ("sans-serif", 24))
            .map_err(|e| draw_err(path, e))?;
        let panels = root.split_evenly((series.len(), 1));
        for (panel, (name, values)) in panels.iter().zip(&series) {
            let finite = values.iter().copied().filter(|v| v.is_finite());
            let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
            let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
            let mut chart = ChartBuilder::on(panel)
                .caption(name.as_str(), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(80)
                .build_cartesian_2d(0f64..values.len().max(2) as f64, (lo - pad)..(hi + pad))
                .map_err(|e| draw_err(path, e))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| draw_err(path, e))?;
            chart
                .draw_series(LineSeries::new(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, v)| (i as f64 + 1.0, *v)),
                    BLUE.stroke_width(2),
                ))
                .map_err(|e| draw_err(path, e))?;
        }
        root.present().map_err(|e| draw_err(path, e))
    })
}

/// A 2-D scatter of `coords` (cells x 2) coloured by `labels` (codes into `names`), with
/// a legend.
pub fn scatter(
    path: &Path,
    title: &str,
    coords: ArrayView2<f64>,
    labels: &[usize],
    names: &[String],
) -> Result<(), PlotError> {
    if coords.ncols() != 2 || coords.nrows() != labels.len() {
        return Err(PlotError::Input(format!(
            "coordinates are {} x {}, labels {}: need cells x 2 and one label per cell",
            coords.nrows(),
            coords.ncols(),
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|l| **l >= names.len()) {
        return Err(PlotError::Input(format!(
            "label code {bad} has no name ({} names)",
            names.len()
        )));
    }
    let range = |c: usize| {
        let (lo, hi) = coords
            .column(c)
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            });
        let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
        (lo - pad)..(hi + pad)
    };
    atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (1000, 760)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let (plot, legend) = root.split_horizontally(760);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(range(0), range(1))
            .map_err(|e| draw_err(path, e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("UMAP 1")
            .y_desc("UMAP 2")
            .draw()
            .map_err(|e| draw_err(path, e))?;
        for (code, _) in names.iter().enumerate() {
            let colour = Palette99::pick(code).to_rgba();
            chart
                .draw_series(
                    coords
                        .rows()
                        .into_iter()
                        .zip(labels)
                        .filter(|(_, l)| **l == code)
                        .map(|(r, _)| Circle::new((r[0], r[1]), 3, colour.filled())),
                )
                .map_err(|e| draw_err(path, e))?;
        }
        for (code, name) in names.iter().enumerate().take(40) {
            let y = 30 + 18 * code as i32;
            let colour = Palette99::pick(code).to_rgba();
            legend
                .draw(&Circle::new((12, y), 5, colour.filled()))
                .map_err(|e| draw_err(path, e))?;
            legend
                .draw(&Text::new(name.clone(), (24, y - 7), ("sans-serif", 14)))
                .map_err(|e| draw_err(path, e))?;
        }
        root.present().map_err(|e| draw_err(path, e))
    })
}

/// A benchmark table as bars: one panel per metric, one bar per method (its mean) with a
/// line from mean - std to mean + std. `rows` are (method label, one `(mean, std)` per
/// metric); NaN means draw no bar.
pub fn metric_bars(
    path: &Path,
    title: &str,
    metrics: &[String],
    rows: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    if metrics.is_empty() || rows.is_empty() {
        return Err(PlotError::Input("no metrics or no methods to plot".into()));
    }
    if let Some((label, v)) = rows.iter().find(|(_, v)| v.len() != metrics.len()) {
        return Err(PlotError::Input(format!(
            "`{label}` has {} values for {} metrics",
            v.len(),
            metrics.len()
        )));
    }
    atomic(path, |tmp| {
        let bar_h = 26u32;
        let panel_h = 70 + bar_h * rows.len() as u32;
        let root = BitMapBackend::new(tmp, (1000, 50 + panel_h * metrics.len() as u32))
            .into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let root = root
            .titled(title, ("sans-serif", 24))
            .map_err(|e| draw_err(path, e))?;
        let panels = root.split_evenly((metrics.len(), 1));
        let n = rows.len();
        for (m, (panel, metric)) in panels.iter().zip(metrics).enumerate() {
            let values = rows.iter().map(|(_, v)| v[m]);
            let (lo, hi) = values.filter(|(mean, _)| mean.is_finite()).fold(
                (0f64, f64::NEG_INFINITY),
                |(a, b), (mean, std)| {
                    let std = if std.is_finite() { std } else { 0.0 };
                    (a.min(mean - std), b.max(mean + std))
                },
            );
            let hi = if hi.is_finite() && hi > lo {
                hi
            } else {
                lo + 1.0
            };
            let pad = 0.05 * (hi - lo);
            let mut chart = ChartBuilder::on(panel)
                .caption(metric.as_str(), ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(25)
                .y_label_area_size(360)
                .build_cartesian_2d((lo - pad)..(hi + pad), 0f64..n as f64)
                .map_err(|e| draw_err(path, e))?;
            let label_of = |y: &f64| {
                let i = (n as f64 - y - 0.5).round();
                if i >= 0.0 && (i as usize) < n && (y.fract() - 0.5).abs() < 1e-9 {
                    rows[i as usize].0.clone()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(2 * n + 1)
                .y_label_formatter(&label_of)
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| draw_err(path, e))?;
            for (i, (_, v)) in rows.iter().enumerate() {
                let (mean, std) = v[m];
                if !mean.is_finite() {
                    continue;
                }
                // the first row on top
                let y = (n - 1 - i) as f64;
                let colour = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0f64.max(lo), y + 0.15), (mean, y + 0.85)],
                        colour.filled(),
                    )))
                    .map_err(|e| draw_err(path, e))?;
                if std.is_finite() && std > 0.0 {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(mean - std, y + 0.5), (mean + std, y + 0.5)],
                            BLACK.stroke_width(2),
                        )))
                        .map_err(|e| draw_err(path, e))?;
                }
            }
        }
        root.present().map_err(|e| draw_err(path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn non_white(path: &Path) -> (u32, u32, usize) {
        let img = image::open(path).unwrap().to_rgb8();
        let n = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        (img.width(), img.height(), n)
    }

    #[test]
    fn scatter_draws_every_label_colour() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("umap.png");
        let coords = Array2::from_shape_fn((60, 2), |(i, c)| {
            if c == 0 {
                (i % 3) as f64 * 10.0
            } else {
                (i / 3) as f64
            }
        });
        let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let names = vec!["B".to_string(), "T".to_string(), "NK".to_string()];
        scatter(&path, "test", coords.view(), &labels, &names).unwrap();
        let (w, h, ink) = non_white(&path);
        assert_eq!((w, h), (1000, 760));
        assert!(ink > 2000, "{ink} non-white pixels");
        let img = image::open(&path).unwrap().to_rgb8();
        for code in 0..3 {
            let c = Palette99::pick(code).to_rgba();
            let rgb = [c.0, c.1, c.2];
            assert!(
                img.pixels().any(|p| p.0 == rgb),
                "colour of label {code} drawn"
            );
        }
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, ["umap.png"], "only the figure is left");
    }

    #[test]
    fn metric_bars_draw_one_coloured_bar_per_method_and_panel_per_metric() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.png");
        let metrics = vec!["knn_accuracy".to_string(), "kmeans_nmi".to_string()];
        let rows = vec![
            ("sailerx".to_string(), vec![(0.6, 0.05), (0.5, 0.02)]),
            (
                "rna_pca (input)".to_string(),
                vec![(0.7, 0.0), (f64::NAN, 0.0)],
            ),
            (
                "atac_lsi (input)".to_string(),
                vec![(0.2, 0.01), (0.1, 0.0)],
            ),
        ];
        metric_bars(&path, "table", &metrics, &rows).unwrap();
        let (w, h, ink) = non_white(&path);
        assert_eq!((w, h), (1000, 50 + 2 * (70 + 26 * 3)));
        assert!(ink > 5000, "{ink}");
        let img = image::open(&path).unwrap().to_rgb8();
        for code in 0..3 {
            let c = Palette99::pick(code).to_rgba();
            assert!(
                img.pixels().any(|p| p.0 == [c.0, c.1, c.2]),
                "bar of method {code} drawn"
            );
        }
        let bad = dir.path().join("bad.png");
        let short = vec![("x".to_string(), vec![(0.5, 0.0)])];
        let err = metric_bars(&bad, "t", &metrics, &short).unwrap_err();
        assert!(err.to_string().contains("1 values for 2 metrics"), "{err}");
        assert!(metric_bars(&bad, "t", &[], &rows).is_err());
        assert!(!bad.exists());
    }

    #[test]
    fn loss_curves_one_panel_per_series_and_errors_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("losses.png");
        let s = vec![
            (
                "total".to_string(),
                (0..50).map(|i| 100.0 / (i as f64 + 1.0)).collect(),
            ),
            ("val".to_string(), vec![f64::NAN; 50]),
            ("kl".to_string(), (0..50).map(|i| i as f64).collect()),
        ];
        loss_curves(&path, "losses", &s).unwrap();
        let (w, h, ink) = non_white(&path);
        assert_eq!(
            (w, h),
            (900, 60 + 2 * 220),
            "the all-NaN series is left out"
        );
        assert!(ink > 1000);
        let bad = dir.path().join("none.png");
        assert!(loss_curves(&bad, "x", &[("a".into(), vec![f64::NAN])]).is_err());
        assert!(!bad.exists());
        let labels_bad = scatter(
            &bad,
            "x",
            Array2::zeros((2, 2)).view(),
            &[0, 5],
            &["a".into()],
        );
        assert!(labels_bad.unwrap_err().to_string().contains("label code 5"));
        let missing_dir = dir.path().join("no/such/dir/p.png");
        let err = loss_curves(&missing_dir, "x", &s).unwrap_err().to_string();
        assert!(err.contains("p.png"), "{err}");
    }
}
