//! Typed access to a layer's positional-or-keyword arguments, with errors that point into
//! the spec.

use super::spec::{spec_error, LayerSpec, SpecArg};
use crate::error::{Error, Result};

/// Typed access to a layer's positional-or-keyword arguments.
pub(crate) struct Args<'a> {
    pub(crate) spec: &'a str,
    pub(crate) layer: &'a LayerSpec,
}

impl Args<'_> {
    pub(crate) fn err(&self, position: usize, message: String) -> Error {
        spec_error(self.spec, position, message)
    }

    pub(crate) fn allow(&self, names: &[&str]) -> Result<()> {
        let positional = self.layer.args.iter().filter(|a| a.name.is_none()).count();
        if positional > names.len() {
            return Err(self.err(
                self.layer.position,
                format!(
                    "'{}' takes at most {} arguments",
                    self.layer.name,
                    names.len()
                ),
            ));
        }
        for a in &self.layer.args {
            if let Some(n) = &a.name {
                if !names.contains(&n.as_str()) {
                    return Err(self.err(
                        a.position,
                        format!(
                            "'{}' has no argument '{n}' (it takes {names:?})",
                            self.layer.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, index: usize, name: &str) -> Option<&SpecArg> {
        self.layer
            .args
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
            .or_else(|| {
                self.layer
                    .args
                    .iter()
                    .filter(|a| a.name.is_none())
                    .nth(index)
            })
    }

    pub(crate) fn usize(&self, index: usize, name: &str) -> Result<usize> {
        let a = self.get(index, name).ok_or_else(|| {
            self.err(
                self.layer.position,
                format!("'{}' needs '{name}'", self.layer.name),
            )
        })?;
        match a.value.parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(self.err(
                a.position,
                format!("'{name}' must be a positive integer, got '{}'", a.value),
            )),
        }
    }

    pub(crate) fn f32_or(&self, index: usize, name: &str, default: f32) -> Result<f32> {
        match self.get(index, name) {
            None => Ok(default),
            Some(a) => a
                .value
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    self.err(
                        a.position,
                        format!("'{name}' must be a number, got '{}'", a.value),
                    )
                }),
        }
    }

    pub(crate) fn bool_or(&self, index: usize, name: &str, default: bool) -> Result<bool> {
        match self.get(index, name) {
            None => Ok(default),
            Some(a) => match a.value.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                v => Err(self.err(
                    a.position,
                    format!("'{name}' must be true or false, got '{v}'"),
                )),
            },
        }
    }
}

impl Args<'_> {
    /// A square-or-pair argument: `3` gives (3, 3), `(3,5)` gives (3, 5).
    pub(crate) fn pair_or(
        &self,
        index: usize,
        name: &str,
        default: Option<usize>,
    ) -> Result<(usize, usize)> {
        let Some(a) = self.get(index, name) else {
            return default.map(|d| (d, d)).ok_or_else(|| {
                self.err(
                    self.layer.position,
                    format!("'{}' needs '{name}'", self.layer.name),
                )
            });
        };
        let text = a.value.trim().trim_start_matches('(').trim_end_matches(')');
        let parts: Vec<Option<usize>> = text.split(',').map(|p| p.trim().parse().ok()).collect();
        match parts.as_slice() {
            [Some(v)] => Ok((*v, *v)),
            [Some(a), Some(b)] => Ok((*a, *b)),
            _ => Err(self.err(
                a.position,
                format!(
                    "'{name}' must be an integer or a pair like (3,5), got '{}'",
                    a.value
                ),
            )),
        }
    }
}
