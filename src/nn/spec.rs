//! The model-spec syntax: a comma-separated layer list in PyTorch's words, e.g.
//! `linear(784,256),relu,dropout(p=0.5),linear(256,10)`. Containers take layer lists:
//! `residual(conv2d(8,8,3,padding=1),relu, shortcut=(conv2d(8,8,1)))`.

use crate::error::{Error, Result};

/// Layer names whose arguments are layers rather than values.
pub const CONTAINERS: &[&str] = &["residual"];

/// How deep containers may nest: the parser and the model builder recurse once per
/// level, so a spec nesting deeper is refused rather than let overflow the stack.
pub const MAX_NESTING: usize = 64;

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

/// One layer as written: its name, its arguments, where it is in the spec, and for a
/// container ([`CONTAINERS`]) the layer lists it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Lower-case layer name (`linear`, `relu`, ...).
    pub name: String,
    /// Its arguments in order (none for a container).
    pub args: Vec<SpecArg>,
    /// Byte offset of the layer name in the spec.
    pub position: usize,
    /// Byte offset just past the layer's text (its closing parenthesis, or its name).
    pub end: usize,
    /// A container's layers, in order.
    pub body: Vec<LayerSpec>,
    /// A container's `shortcut=(...)` layers; empty when it has none.
    pub shortcut: Vec<LayerSpec>,
}

impl LayerSpec {
    /// The layer's text in `spec`, the string it was parsed from.
    pub fn text<'s>(&self, spec: &'s str) -> &'s str {
        spec.get(self.position..self.end).unwrap_or("")
    }
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
    let mut parser = Parser {
        spec,
        i: 0,
        depth: 0,
    };
    let layers = parser.list(false)?;
    match parser.peek() {
        None => Ok(layers),
        Some(_) => Err(parser.unexpected("',' between layers")),
    }
}

/// A recursive-descent parser over the spec's bytes.
struct Parser<'a> {
    spec: &'a str,
    /// The byte offset of the next unread byte.
    i: usize,
    /// Containers open around the current position.
    depth: usize,
}

impl Parser<'_> {
    /// The next byte after any whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.spec.as_bytes();
        while self.i < bytes.len() && bytes[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
        bytes.get(self.i).copied()
    }

    /// An error at the current position: `expected {what}, found ...`.
    fn unexpected(&self, what: &str) -> Error {
        let found = match char_at(self.spec, self.i) {
            Some(c) => format!("'{c}'"),
            None => "the end of the spec".to_string(),
        };
        spec_error(self.spec, self.i, format!("expected {what}, found {found}"))
    }

    /// Layers separated by commas, up to the end of the spec or a `)` (left unread).
    /// Inside parentheses (`nested`) a comma may also end the list, as in a layer's
    /// arguments.
    fn list(&mut self, nested: bool) -> Result<Vec<LayerSpec>> {
        let mut layers = vec![self.layer()?];
        while self.peek() == Some(b',') {
            self.i += 1;
            if nested && self.peek() == Some(b')') {
                break;
            }
            layers.push(self.layer()?);
        }
        Ok(layers)
    }

    /// An identifier (letters, digits, `_`), or an empty string.
    fn word(&mut self) -> &str {
        self.peek();
        let bytes = self.spec.as_bytes();
        let start = self.i;
        while self.i < bytes.len()
            && (bytes[self.i].is_ascii_alphanumeric() || bytes[self.i] == b'_')
        {
            self.i += 1;
        }
        &self.spec[start..self.i]
    }

    /// One layer: a name, then its arguments (or, for a container, its layers) in
    /// parentheses when it has any.
    fn layer(&mut self) -> Result<LayerSpec> {
        self.peek();
        let position = self.i;
        let name = self.word().to_ascii_lowercase();
        if name.is_empty() {
            return Err(self.unexpected("a layer name"));
        }
        let mut layer = LayerSpec {
            name,
            args: Vec::new(),
            position,
            end: self.i,
            body: Vec::new(),
            shortcut: Vec::new(),
        };
        if self.peek() == Some(b'(') {
            self.i += 1;
            if CONTAINERS.contains(&layer.name.as_str()) {
                if self.depth == MAX_NESTING {
                    return Err(spec_error(
                        self.spec,
                        position,
                        format!("containers nest at most {MAX_NESTING} deep"),
                    ));
                }
                self.depth += 1;
                self.container(&mut layer)?;
                self.depth -= 1;
            } else {
                layer.args = self.args(&layer.name)?;
            }
            layer.end = self.i;
        }
        Ok(layer)
    }

    /// A container's contents after its `(`, through its `)`: layers, and at most one
    /// `shortcut=(layers)`.
    fn container(&mut self, layer: &mut LayerSpec) -> Result<()> {
        loop {
            match self.peek() {
                Some(b')') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return Err(self.unclosed(&layer.name)),
                _ => {}
            }
            let start = self.i;
            let keyword = self.word().to_ascii_lowercase();
            if keyword == "shortcut" && self.peek() == Some(b'=') {
                if !layer.shortcut.is_empty() {
                    return Err(spec_error(self.spec, start, "a second 'shortcut'"));
                }
                self.i += 1;
                if self.peek() != Some(b'(') {
                    return Err(self.unexpected("'(' and the shortcut's layers"));
                }
                self.i += 1;
                layer.shortcut = self.list(true)?;
                self.close(&layer.name)?;
            } else {
                self.i = start;
                layer.body.push(self.layer()?);
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b')') => {}
                None => return Err(self.unclosed(&layer.name)),
                Some(_) => return Err(self.unexpected("',' between layers or ')'")),
            }
        }
    }

    /// Reads the `)` that ends a list inside `name`'s parentheses.
    fn close(&mut self, name: &str) -> Result<()> {
        match self.peek() {
            Some(b')') => {
                self.i += 1;
                Ok(())
            }
            None => Err(self.unclosed(name)),
            Some(_) => Err(self.unexpected("',' between layers or ')'")),
        }
    }

    fn unclosed(&self, name: &str) -> Error {
        spec_error(self.spec, self.i, format!("unclosed '(' in layer '{name}'"))
    }

    /// A layer's arguments after its `(`, through its `)`: values split at the commas
    /// outside nested parentheses, each positional or `name=value`.
    fn args(&mut self, name: &str) -> Result<Vec<SpecArg>> {
        let (spec, bytes) = (self.spec, self.spec.as_bytes());
        let mut args = Vec::new();
        loop {
            if self.peek() == Some(b')') {
                self.i += 1;
                return Ok(args);
            }
            let arg_start = self.i;
            let mut depth = 0;
            while self.i < bytes.len() {
                match bytes[self.i] {
                    b'(' => depth += 1,
                    b')' if depth == 0 => break,
                    b')' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
                self.i += 1;
            }
            if self.i >= bytes.len() {
                return Err(self.unclosed(name));
            }
            let raw = &spec[arg_start..self.i];
            let text = raw.trim();
            if text.is_empty() {
                return Err(spec_error(spec, arg_start, "empty argument"));
            }
            let position = arg_start + (raw.len() - raw.trim_start().len());
            args.push(match text.split_once('=') {
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
            });
            if bytes[self.i] == b',' {
                self.i += 1;
            }
        }
    }
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

    #[test]
    fn containers_hold_layer_lists_and_a_shortcut() {
        let spec = "conv2d(1,8,3), residual( conv2d(8,8,3,padding=(1,1)), relu ,\
                    shortcut = (conv2d(8,8,1,bias=false), batchnorm2d(8)) ), relu";
        let l = parse_spec(spec).unwrap();
        assert_eq!(l.len(), 3);
        let r = &l[1];
        assert_eq!(r.name, "residual");
        assert!(r.args.is_empty());
        assert_eq!(r.text(spec).chars().last(), Some(')'));
        assert!(r.text(spec).starts_with("residual("));
        let names = |ls: &[LayerSpec]| ls.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&r.body), ["conv2d", "relu"]);
        assert_eq!(names(&r.shortcut), ["conv2d", "batchnorm2d"]);
        assert_eq!(r.body[0].args[3].value, "(1,1)");
        assert_eq!(r.body[0].text(spec), "conv2d(8,8,3,padding=(1,1))");
        assert_eq!(r.shortcut[0].args[3].name.as_deref(), Some("bias"));
        assert_eq!(l[2].text(spec), "relu");
        // Nested containers, a shortcut first, and trailing commas inside parentheses
        // (as in a layer's arguments; not at the end of the spec).
        let l = parse_spec("residual(shortcut=(relu,),residual(tanh),)").unwrap();
        assert_eq!(names(&l[0].body), ["residual"]);
        assert_eq!(names(&l[0].body[0].body), ["tanh"]);
        assert_eq!(names(&l[0].shortcut), ["relu"]);
        assert!(l[0].body[0].shortcut.is_empty());
    }

    #[test]
    fn container_errors_point_at_the_position() {
        for (spec, position, message) in [
            ("residual(relu", 13, "unclosed '(' in layer 'residual'"),
            (
                "residual(relu relu)",
                14,
                "expected ',' between layers or ')', found 'r'",
            ),
            (
                "residual(relu,shortcut=relu)",
                23,
                "expected '(' and the shortcut's layers, found 'r'",
            ),
            (
                "residual(relu,shortcut=(relu),shortcut=(tanh))",
                30,
                "a second 'shortcut'",
            ),
            (
                "residual(shortcut=(relu)",
                24,
                "unclosed '(' in layer 'residual'",
            ),
            (
                "residual(shortcut=(relu tanh))",
                24,
                "expected ',' between layers or ')', found 't'",
            ),
            ("residual(relu),)", 15, "expected a layer name, found ')'"),
            (
                "residual(relu))",
                14,
                "expected ',' between layers, found ')'",
            ),
            (
                "relu,",
                5,
                "expected a layer name, found the end of the spec",
            ),
        ] {
            let Err(Error::Spec {
                position: at,
                message: m,
                ..
            }) = parse_spec(spec)
            else {
                panic!("expected a spec error for {spec}");
            };
            assert_eq!((at, m.as_str()), (position, message), "{spec}");
        }
    }

    #[test]
    fn nesting_is_limited_without_overflowing_the_stack() {
        let at_limit = format!(
            "{}relu{}",
            "residual(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(parse_spec(&at_limit).is_ok());
        // One level more, and far more: refused at the 65th, without recursing further.
        for depth in [MAX_NESTING + 1, 100_000] {
            let Err(Error::Spec {
                position, message, ..
            }) = parse_spec(&format!("{}relu", "residual(".repeat(depth)))
            else {
                panic!("expected a spec error at depth {depth}");
            };
            assert_eq!(position, 9 * MAX_NESTING, "depth {depth}");
            assert_eq!(message, "containers nest at most 64 deep");
        }
    }
}
