//! The model-spec syntax: a comma-separated layer list in PyTorch's words, e.g.
//! `linear(784,256),relu,dropout(p=0.5),linear(256,10)`.

use crate::error::{Error, Result};

/// One argument of a layer: positional or `name=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecArg {
    /// The keyword, for `name=value` arguments.
    pub name: Option<String>,
    /// The value as written (a number, `true`/`false`, or a tuple like `(3,5)`).
    pub value: String,
    /// Byte offset of the value in the spec, for error messages.
    pub position: usize,
}

/// One layer as written: its name, its arguments, where it starts in the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Lower-case layer name (`linear`, `relu`, ...).
    pub name: String,
    /// Its arguments in order.
    pub args: Vec<SpecArg>,
    /// Byte offset of the layer name in the spec.
    pub position: usize,
}

/// Builds a spec error with a caret under `position`.
pub fn spec_error(spec: &str, position: usize, message: impl Into<String>) -> Error {
    Error::Spec {
        spec: spec.to_string(),
        position,
        // Characters before `position` (which may fall inside one, when it comes from a
        // caller), so the caret lines up under multi-byte text too.
        marker: " ".repeat(
            spec.char_indices()
                .take_while(|&(i, _)| i < position)
                .count(),
        ),
        message: message.into(),
    }
}

/// Parses a layer list. Whitespace is allowed anywhere between tokens.
pub fn parse_spec(spec: &str) -> Result<Vec<LayerSpec>> {
    let bytes = spec.as_bytes();
    let mut i = 0;
    let mut layers = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if start == i {
            let what = match char_at(spec, i) {
                Some(c) => format!("expected a layer name, found '{c}'"),
                None => "expected a layer name, found the end of the spec".to_string(),
            };
            return Err(spec_error(spec, i, what));
        }
        let name = spec[start..i].to_ascii_lowercase();
        skip_ws(&mut i);
        let mut args = Vec::new();
        if i < bytes.len() && bytes[i] == b'(' {
            i += 1;
            loop {
                skip_ws(&mut i);
                if i < bytes.len() && bytes[i] == b')' {
                    i += 1;
                    break;
                }
                let arg_start = i;
                let mut depth = 0;
                while i < bytes.len() {
                    match bytes[i] {
                        b'(' => depth += 1,
                        b')' if depth == 0 => break,
                        b')' => depth -= 1,
                        b',' if depth == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                if i >= bytes.len() {
                    return Err(spec_error(
                        spec,
                        i,
                        format!("unclosed '(' in layer '{name}'"),
                    ));
                }
                let text = spec[arg_start..i].trim();
                if text.is_empty() {
                    return Err(spec_error(spec, arg_start, "empty argument"));
                }
                let lead = spec[arg_start..i].len() - spec[arg_start..i].trim_start().len();
                let position = arg_start + lead;
                let arg = match text.split_once('=') {
                    Some((k, v)) => SpecArg {
                        name: Some(k.trim().to_ascii_lowercase()),
                        value: v.trim().to_string(),
                        position: position + k.len() + 1,
                    },
                    None => SpecArg {
                        name: None,
                        value: text.to_string(),
                        position,
                    },
                };
                args.push(arg);
                if bytes[i] == b',' {
                    i += 1;
                }
            }
        }
        layers.push(LayerSpec {
            name,
            args,
            position: start,
        });
        skip_ws(&mut i);
        if i >= bytes.len() {
            break;
        }
        if bytes[i] != b',' {
            return Err(spec_error(
                spec,
                i,
                format!(
                    "expected ',' between layers, found '{}'",
                    char_at(spec, i).unwrap_or(' ')
                ),
            ));
        }
        i += 1;
    }
    Ok(layers)
}

/// The character starting at byte `i` of `spec`, if `i` starts one.
fn char_at(spec: &str, i: usize) -> Option<char> {
    spec.get(i..).and_then(|rest| rest.chars().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positional_and_keyword_arguments() {
        let l = parse_spec("linear(784, 256), relu ,Dropout(p=0.5),conv2d(1,8,(3,5),bias=false)")
            .unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].name, "linear");
        assert_eq!(l[0].args[1].value, "256");
        assert_eq!(l[1].name, "relu");
        assert!(l[1].args.is_empty());
        assert_eq!(l[2].name, "dropout");
        assert_eq!(l[2].args[0].name.as_deref(), Some("p"));
        assert_eq!(l[3].args[2].value, "(3,5)");
        assert_eq!(l[3].args[3].value, "false");
    }

    #[test]
    fn errors_point_at_the_position() {
        let Err(Error::Spec { position, .. }) = parse_spec("linear(784,256) relu") else {
            panic!("expected a spec error");
        };
        assert_eq!(position, 16);
        let Err(Error::Spec { position, .. }) = parse_spec("linear(784,256") else {
            panic!("expected a spec error");
        };
        assert_eq!(position, 14);
        assert!(parse_spec("relu,,relu").is_err());
        assert!(parse_spec("").is_err());
    }

    /// Regression: a position inside a multi-byte character made `spec_error` slice the
    /// spec off a character boundary, a panic; the caret counts characters.
    #[test]
    fn carets_count_characters_and_never_split_one() {
        for (position, spaces) in [(0, 0), (1, 1), (2, 1), (3, 2), (99, 3)] {
            let Error::Spec { marker, .. } = spec_error("é日x", position, "m") else {
                panic!("expected a spec error");
            };
            assert_eq!(marker.len(), spaces, "position {position}");
        }
        let Err(Error::Spec {
            position, message, ..
        }) = parse_spec("relu \u{65e5}")
        else {
            panic!("expected a spec error");
        };
        assert_eq!(position, 5);
        assert_eq!(message, "expected ',' between layers, found '\u{65e5}'");
    }
}
