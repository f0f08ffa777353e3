//! Loss and accuracy curves of a run, drawn to SVG or PNG with plotters.
//!
//! The figure has two panels over the epochs: losses (training, test, validation, and the
//! per-step training loss as a thin line when step records exist) and accuracies (test and
//! validation, in percent). [`Curves`] is built from the trainer's events or reports, or
//! from a `kiln train --log` JSON-lines file, and [`draw`] writes the figure.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::train::{EpochReport, Event};
use crate::{Error, Result};

/// Width and height in pixels of figures drawn by [`draw`]: two panels side by side.
pub const DEFAULT_SIZE: (u32, u32) = (1200, 500);

/// Embedded so PNG text renders identically everywhere without looking up system fonts
/// (plotters' ab_glyph backend only knows fonts registered with it).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family every text style of the figure names; the embedded font is registered under it.
const FAMILY: &str = "sans-serif";

/// One evaluated epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPoint {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f32,
    /// Test loss after the epoch.
    pub test_loss: f32,
    /// Test accuracy after the epoch, as a fraction.
    pub test_accuracy: f32,
    /// Validation loss, with a validation split.
    pub val_loss: Option<f32>,
    /// Validation accuracy as a fraction, with a validation split.
    pub val_accuracy: Option<f32>,
}

impl From<&EpochReport> for EpochPoint {
    fn from(r: &EpochReport) -> Self {
        EpochPoint {
            epoch: r.epoch,
            train_loss: r.train_loss,
            test_loss: r.test_loss,
            test_accuracy: r.test_accuracy,
            val_loss: r.val_loss,
            val_accuracy: r.val_accuracy,
        }
    }
}

/// One optimizer step's training loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepPoint {
    /// The epoch the step belongs to, from 1.
    pub epoch: usize,
    /// The batch's mean loss.
    pub loss: f32,
}

/// The metrics of a run, in the order they happened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    /// Per-epoch metrics.
    pub epochs: Vec<EpochPoint>,
    /// Per-step training losses (empty unless the run emitted step events).
    pub steps: Vec<StepPoint>,
    /// Batches in a full epoch, when known; otherwise the largest number of step records
    /// of any epoch stands in for it.
    pub steps_per_epoch: Option<usize>,
}

/// The two panels of the figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    /// Losses.
    Loss,
    /// Accuracies, in percent.
    Accuracy,
}

/// The curves the figure can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesKind {
    /// Training loss of every step (a thin line).
    StepLoss,
    /// Mean training loss per epoch.
    TrainLoss,
    /// Test loss per epoch.
    TestLoss,
    /// Validation loss per epoch.
    ValLoss,
    /// Test accuracy per epoch.
    TestAccuracy,
    /// Validation accuracy per epoch.
    ValAccuracy,
}

impl SeriesKind {
    /// The legend text.
    pub fn name(self) -> &'static str {
        match self {
            SeriesKind::StepLoss => "train loss (per step)",
            SeriesKind::TrainLoss => "train loss",
            SeriesKind::TestLoss => "test loss",
            SeriesKind::ValLoss => "val loss",
            SeriesKind::TestAccuracy => "test accuracy",
            SeriesKind::ValAccuracy => "val accuracy",
        }
    }

    /// The panel the curve is drawn on.
    pub fn panel(self) -> Panel {
        match self {
            SeriesKind::TestAccuracy | SeriesKind::ValAccuracy => Panel::Accuracy,
            _ => Panel::Loss,
        }
    }

    /// One colour per data split, the same on both panels, so test loss and test accuracy
    /// read as one split.
    fn color(self) -> RGBColor {
        match self {
            SeriesKind::StepLoss => RGBColor(158, 202, 225),
            SeriesKind::TrainLoss => RGBColor(31, 119, 180),
            SeriesKind::TestLoss | SeriesKind::TestAccuracy => RGBColor(255, 127, 14),
            SeriesKind::ValLoss | SeriesKind::ValAccuracy => RGBColor(44, 160, 44),
        }
    }
}

/// One curve as drawn: x in epochs, y in the panel's unit; non-finite values are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Which curve.
    pub kind: SeriesKind,
    /// The points, in order.
    pub points: Vec<(f64, f64)>,
}

impl Curves {
    /// Curves from the reports [`Trainer::fit`](crate::train::Trainer::fit) returns (no
    /// per-step losses: the reports hold none).
    pub fn from_reports(reports: &[EpochReport]) -> Self {
        Curves {
            epochs: reports.iter().map(EpochPoint::from).collect(),
            ..Curves::default()
        }
    }

    /// Records what an event adds to the curves; call it from the `fit` callback to get
    /// per-step losses too when step events are on.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::EpochStart { batches, .. } => self.steps_per_epoch = Some(*batches),
            Event::Step { epoch, loss, .. } => self.steps.push(StepPoint {
                epoch: *epoch,
                loss: *loss,
            }),
            Event::EpochEnd(r) => self.epochs.push(r.into()),
            Event::Batch { .. } | Event::Restored { .. } => {}
        }
    }

    /// Reads a `kiln train --log` file.
    pub fn read_log(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_log(&text, &path.display().to_string())
    }

    /// Parses the JSON lines of a `kiln train --log` file: objects with `train_loss` are
    /// epoch records, objects with `step` step records; other objects are skipped so logs
    /// may gain record kinds. A line that is not a JSON object, or a record missing a
    /// field, is an error naming `source` and the line number.
    pub fn parse_log(text: &str, source: &str) -> Result<Self> {
        let mut curves = Curves::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let record = Record {
                source,
                line: index + 1,
                object: match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(serde_json::Value::Object(object)) => object,
                    Ok(_) => {
                        return Err(Error::data(
                            source,
                            format!("line {}: not a JSON object", index + 1),
                        ))
                    }
                    Err(e) => return Err(Error::data(source, format!("line {}: {e}", index + 1))),
                },
            };
            if record.object.contains_key("train_loss") {
                curves.epochs.push(EpochPoint {
                    epoch: record.epoch()?,
                    train_loss: record.number("train_loss")?,
                    test_loss: record.number("test_loss")?,
                    test_accuracy: record.number("test_accuracy")?,
                    val_loss: record.optional("val_loss")?,
                    val_accuracy: record.optional("val_accuracy")?,
                });
            } else if record.object.contains_key("step") {
                curves.steps.push(StepPoint {
                    epoch: record.epoch()?,
                    loss: record.number("loss")?,
                });
            }
        }
        if curves.epochs.is_empty() && curves.steps.is_empty() {
            return Err(Error::data(source, "no epoch or step records to plot"));
        }
        Ok(curves)
    }

    /// The curves as drawn. Epoch metrics sit at x = epoch (the end of the epoch they
    /// summarise); the i-th step of epoch e sits at e − 1 + (i + 1) / steps per epoch, so
    /// the per-step line ends where the epoch's mean is plotted.
    pub fn series(&self) -> Vec<Series> {
        let mut out = Vec::new();
        let mut push = |kind: SeriesKind, points: Vec<(f64, f64)>| {
            let points: Vec<(f64, f64)> = points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            if !points.is_empty() {
                out.push(Series { kind, points });
            }
        };
        push(SeriesKind::StepLoss, self.step_points());
        let epoch = |f: &dyn Fn(&EpochPoint) -> Option<f32>, scale: f64| -> Vec<(f64, f64)> {
            self.epochs
                .iter()
                .filter_map(|e| f(e).map(|v| (e.epoch as f64, f64::from(v) * scale)))
                .collect()
        };
        push(SeriesKind::TrainLoss, epoch(&|e| Some(e.train_loss), 1.0));
        push(SeriesKind::TestLoss, epoch(&|e| Some(e.test_loss), 1.0));
        push(SeriesKind::ValLoss, epoch(&|e| e.val_loss, 1.0));
        push(
            SeriesKind::TestAccuracy,
            epoch(&|e| Some(e.test_accuracy), 100.0),
        );
        push(SeriesKind::ValAccuracy, epoch(&|e| e.val_accuracy, 100.0));
        out
    }

    fn step_points(&self) -> Vec<(f64, f64)> {
        // Runs of consecutive records of one epoch, in order.
        let mut runs: Vec<(usize, Vec<f32>)> = Vec::new();
        for s in &self.steps {
            match runs.last_mut() {
                Some((epoch, losses)) if *epoch == s.epoch => losses.push(s.loss),
                _ => runs.push((s.epoch, vec![s.loss])),
            }
        }
        let longest = runs.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
        let per_epoch = self.steps_per_epoch.unwrap_or(0).max(longest).max(1);
        let mut points = Vec::with_capacity(self.steps.len());
        for (k, (epoch, losses)) in runs.iter().enumerate() {
            // A resumed run starts mid-epoch: its first, short epoch holds that epoch's
            // last steps. A short last epoch is a run stopped by --steps: its first steps.
            let skipped = if k == 0 && runs.len() > 1 {
                per_epoch.saturating_sub(losses.len())
            } else {
                0
            };
            for (i, loss) in losses.iter().enumerate() {
                let x = (*epoch as f64 - 1.0) + (skipped + i + 1) as f64 / per_epoch as f64;
                points.push((x, f64::from(*loss)));
            }
        }
        points
    }
}

/// One parsed log line, for typed field access with errors naming the line.
struct Record<'a> {
    source: &'a str,
    line: usize,
    object: serde_json::Map<String, serde_json::Value>,
}

impl Record<'_> {
    fn error(&self, message: String) -> Error {
        Error::data(self.source, format!("line {}: {message}", self.line))
    }

    fn epoch(&self) -> Result<usize> {
        match self.object.get("epoch").and_then(serde_json::Value::as_u64) {
            Some(e) if e >= 1 => {
                usize::try_from(e).map_err(|_| self.error(format!("epoch {e} is out of range")))
            }
            _ => Err(self.error("\"epoch\" must be a whole number from 1".into())),
        }
    }

    /// A metric; null (how the log writes NaN and infinities) reads as NaN.
    fn number(&self, key: &str) -> Result<f32> {
        self.optional(key)?
            .ok_or_else(|| self.error(format!("no \"{key}\" field")))
    }

    fn optional(&self, key: &str) -> Result<Option<f32>> {
        match self.object.get(key) {
            None => Ok(None),
            Some(serde_json::Value::Null) => Ok(Some(f32::NAN)),
            Some(v) => v
                .as_f64()
                .map(|v| Some(v as f32))
                .ok_or_else(|| self.error(format!("\"{key}\" is not a number: {v}"))),
        }
    }
}

/// The image formats [`draw`] writes, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.svg`: vector, text left to the viewer's fonts.
    Svg,
    /// `.png`: raster, text drawn with the embedded DejaVu Sans.
    Png,
}

impl Format {
    /// The format of `path` by its extension, so a bad name can be refused before a
    /// training run rather than after it.
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(Error::Config(format!(
                "plot file {} must end in .svg or .png",
                path.display()
            ))),
        }
    }
}

/// Draws the figure to `path` (`.svg` or `.png`) at [`DEFAULT_SIZE`].
pub fn draw(curves: &Curves, path: &Path) -> Result<()> {
    draw_with_size(curves, path, DEFAULT_SIZE)
}

/// Draws the figure to `path` (`.svg` or `.png`), `size` pixels wide and high.
pub fn draw_with_size(curves: &Curves, path: &Path, size: (u32, u32)) -> Result<()> {
    let format = Format::of(path)?;
    if size.0 < 200 || size.1 < 150 {
        return Err(Error::Config(format!(
            "a plot needs at least 200x150 pixels, got {}x{}",
            size.0, size.1
        )));
    }
    register_font()?;
    let series = curves.series();
    let io = |message: String| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(format!("drawing the plot: {message}")),
    };
    match format {
        Format::Svg => render(SVGBackend::new(path, size).into_drawing_area(), &series)
            .map_err(|e| io(e.to_string())),
        Format::Png => render(BitMapBackend::new(path, size).into_drawing_area(), &series)
            .map_err(|e| io(e.to_string())),
    }
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Unsupported(
            "the embedded plot font (DejaVu Sans) could not be loaded".into(),
        ))
    }
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn render<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, series: &[Series]) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let x = x_range(series);
    let (width, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(width / 2);
    let of = |panel: Panel| -> Vec<&Series> {
        series.iter().filter(|s| s.kind.panel() == panel).collect()
    };
    let (loss, accuracy) = (of(Panel::Loss), of(Panel::Accuracy));
    let loss_y = y_range(&loss, 0.0..1.0, f64::INFINITY);
    let accuracy_y = y_range(&accuracy, 0.0..100.0, 100.0);
    panel(&left, "Loss", "loss", x.clone(), loss_y, &loss)?;
    panel(&right, "Accuracy", "accuracy (%)", x, accuracy_y, &accuracy)?;
    root.present()
}

/// Whole epochs from before the first point to the last, at least one epoch wide.
fn x_range(series: &[Series]) -> Range<f64> {
    let xs = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let hi = xs().fold(f64::NEG_INFINITY, f64::max);
    let lo = xs().fold(f64::INFINITY, f64::min);
    if !(hi.is_finite() && lo.is_finite()) {
        return 0.0..1.0;
    }
    let (lo, hi) = (lo.floor(), hi.ceil());
    if hi - lo < 1.0 {
        (hi - 1.0)..hi
    } else {
        lo..hi
    }
}

/// The values' span with a margin, kept at or above zero when the values are and at or
/// below `ceiling` when they are.
fn y_range(series: &[&Series], empty: Range<f64>, ceiling: f64) -> Range<f64> {
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let hi = ys().fold(f64::NEG_INFINITY, f64::max);
    let lo = ys().fold(f64::INFINITY, f64::min);
    if !(hi.is_finite() && lo.is_finite()) {
        return empty;
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        0.06 * span
    } else {
        (0.05 * hi.abs()).max(0.01)
    };
    let bottom = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    let top = if hi <= ceiling {
        (hi + pad).min(ceiling)
    } else {
        hi + pad
    };
    if top > bottom {
        bottom..top
    } else {
        bottom..bottom + 1.0
    }
}

/// Tick labels without trailing zeros: epochs are whole numbers on most ticks.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Space around each panel's plotting area, in pixels.
const MARGIN: u32 = 15;
/// Width of the y-axis tick labels and description.
const Y_LABELS: u32 = 70;
/// Height of one legend row.
const LEGEND_ROW: u32 = 20;

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    x: Range<f64>,
    y: Range<f64>,
    series: &[&Series],
) -> DrawResult<DB> {
    let area = area.margin(8, 0, 0, 0).titled(title, (FAMILY, 22))?;
    // The legend gets a strip of its own above the plot, so it never hides a curve.
    let rows = legend_rows(&area, series)?;
    let (legend_area, chart_area) = area.split_vertically(LEGEND_ROW * rows.len() as u32 + 4);
    draw_legend(&legend_area, &rows)?;
    // At most about ten epoch ticks, on whole epochs when the span allows.
    let epochs = (x.end - x.start).round().max(1.0) as usize;
    let x_ticks = if epochs <= 10 { epochs + 1 } else { 11 };
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(MARGIN)
        .x_label_area_size(50)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(x_ticks)
        .y_labels(8)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for s in series {
        let color = s.kind.color();
        let thin = s.kind == SeriesKind::StepLoss;
        let style = ShapeStyle {
            color: color.to_rgba(),
            filled: false,
            stroke_width: if thin { 1 } else { 2 },
        };
        chart.draw_series(LineSeries::new(s.points.iter().copied(), style))?;
        if !thin {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    Ok(())
}

/// Legend entries with their widths in pixels, wrapped into rows that fit over the plot.
type LegendRows = Vec<Vec<(SeriesKind, u32)>>;

/// Swatch, gap before the text, and space after an entry.
const SWATCH: u32 = 16;
const SWATCH_GAP: u32 = 6;
const ENTRY_GAP: u32 = 22;

fn legend_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[&Series],
) -> std::result::Result<LegendRows, DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FAMILY, 14).into_font());
    let room = area
        .dim_in_pixel()
        .0
        .saturating_sub(Y_LABELS + 2 * MARGIN)
        .max(1);
    let mut rows: LegendRows = Vec::new();
    let mut used = 0;
    for s in series {
        let (text, _) = area.estimate_text_size(s.kind.name(), &style)?;
        let width = SWATCH + SWATCH_GAP + text;
        match rows.last_mut() {
            Some(row) if used + ENTRY_GAP + width <= room => {
                row.push((s.kind, width));
                used += ENTRY_GAP + width;
            }
            _ => {
                rows.push(vec![(s.kind, width)]);
                used = width;
            }
        }
    }
    Ok(rows)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &LegendRows,
) -> DrawResult<DB> {
    let style = TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let room = area.dim_in_pixel().0.saturating_sub(Y_LABELS + 2 * MARGIN);
    for (r, row) in rows.iter().enumerate() {
        let width: u32 =
            row.iter().map(|(_, w)| w).sum::<u32>() + ENTRY_GAP * (row.len() as u32 - 1);
        // Centred over the plotting area, which starts after the y labels.
        let mut x = (MARGIN + Y_LABELS + room.saturating_sub(width) / 2) as i32;
        let y = (LEGEND_ROW * r as u32 + LEGEND_ROW / 2) as i32;
        for (kind, w) in row {
            area.draw(&Rectangle::new(
                [(x, y - 4), (x + SWATCH as i32, y + 4)],
                kind.color().filled(),
            ))?;
            area.draw(&Text::new(
                kind.name(),
                (x + (SWATCH + SWATCH_GAP) as i32, y),
                style.clone(),
            ))?;
            x += (w + ENTRY_GAP) as i32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_fill_their_epoch_and_a_resumed_first_epoch_its_end() {
        let step = |epoch, loss| StepPoint { epoch, loss };
        let curves = Curves {
            steps: vec![
                step(1, 1.0),
                step(2, 0.9),
                step(2, 0.8),
                step(2, 0.7),
                step(2, 0.6),
            ],
            ..Curves::default()
        };
        let xs: Vec<f64> = curves.step_points().iter().map(|p| p.0).collect();
        assert_eq!(xs, vec![1.0, 1.25, 1.5, 1.75, 2.0]);
    }

    #[test]
    fn ranges_pad_and_stay_in_their_domain() {
        let s = Series {
            kind: SeriesKind::TestAccuracy,
            points: vec![(1.0, 50.0), (2.0, 100.0)],
        };
        let r = y_range(&[&s], 0.0..100.0, 100.0);
        assert!(r.start < 50.0 && r.end == 100.0, "{r:?}");
        assert_eq!(x_range(&[s]), 1.0..2.0);
        assert_eq!(x_range(&[]), 0.0..1.0);
        assert_eq!(tick(&2.0), "2");
        assert_eq!(tick(&0.25), "0.25");
    }
}
