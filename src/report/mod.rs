//! Reports of finished or logged runs.

pub mod plot;
