//! `kiln plot`: the loss and accuracy figure of a `kiln train --log` file.

use std::path::PathBuf;

use clap::Args;

use kiln::report::plot::{self, Curves};
use kiln::Result;

/// Arguments of `kiln plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A JSON-lines log written by `kiln train --log`.
    log: PathBuf,
    /// The figure: .svg or .png (default: LOG with the extension .svg).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Width in pixels.
    #[arg(long, default_value_t = plot::DEFAULT_SIZE.0)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = plot::DEFAULT_SIZE.1)]
    height: u32,
}

/// Runs `kiln plot`.
pub fn run(args: PlotArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.log.with_extension("svg"));
    // Refuse a bad output name before reading a possibly long log.
    plot::Format::of(&out)?;
    let curves = Curves::read_log(&args.log)?;
    plot::draw_with_size(&curves, &out, (args.width, args.height))?;
    println!(
        "wrote {} ({} epochs, {} steps)",
        out.display(),
        curves.epochs.len(),
        curves.steps.len()
    );
    Ok(())
}
