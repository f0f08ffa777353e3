//! `kiln parity` (wired up once the op table lands).

use clap::Args;

/// Arguments of `kiln parity`.
#[derive(Args, Debug)]
pub struct ParityArgs {}

/// Runs `kiln parity`.
pub fn run(_args: ParityArgs) -> kiln::Result<()> {
    Err(kiln::Error::Unsupported("parity: in progress".into()))
}
