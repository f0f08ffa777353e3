//! Residual blocks and the `resnet` preset: names, shapes, values, dropout streams and
//! shape errors.

use super::*;
use crate::graph::{interpret, NodeKind};
use crate::rng::StepRng;

const RESNET: &str = "conv2d(1,4,3,padding=1,bias=false),batchnorm2d(4),relu,\
residual(conv2d(4,4,3,padding=1,bias=false),batchnorm2d(4),relu,conv2d(4,4,3,padding=1)),\
relu,residual(conv2d(4,8,3,stride=2,padding=1),relu,\
shortcut=(conv2d(4,8,1,stride=2,bias=false),batchnorm2d(8))),\
adaptiveavgpool2d(1),flatten,linear(8,10)";

fn names(g: &Graph) -> Vec<(String, Vec<usize>)> {
    g.params()
        .iter()
        .chain(&g.buffers())
        .map(|(_, n, s, _)| (n.to_string(), s.dims().to_vec()))
        .collect()
}

#[test]
fn blocks_name_parameters_by_body_and_shortcut() {
    let m = Model::parse(RESNET).unwrap();
    assert!(m.takes_images());
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 36]));
    let built = m.build(&mut g, x, [1, 6, 6], Mode::Train).unwrap();
    assert_eq!(g.shape(built.output), &Shape::new(&[2, 10]));
    // One running-statistics update per batch norm, nested ones included.
    assert_eq!(built.updates.len(), 3);
    let want: Vec<(String, Vec<usize>)> = [
        ("0.weight", vec![4, 1, 3, 3]),
        ("1.weight", vec![4]),
        ("1.bias", vec![4]),
        ("3.body.0.weight", vec![4, 4, 3, 3]),
        ("3.body.1.weight", vec![4]),
        ("3.body.1.bias", vec![4]),
        ("3.body.3.weight", vec![4, 4, 3, 3]),
        ("3.body.3.bias", vec![4]),
        ("5.body.0.weight", vec![8, 4, 3, 3]),
        ("5.body.0.bias", vec![8]),
        ("5.shortcut.0.weight", vec![8, 4, 1, 1]),
        ("5.shortcut.1.weight", vec![8]),
        ("5.shortcut.1.bias", vec![8]),
        ("8.weight", vec![10, 8]),
        ("8.bias", vec![10]),
        ("1.running_stats", vec![2, 4]),
        ("3.body.1.running_stats", vec![2, 4]),
        ("5.shortcut.1.running_stats", vec![2, 8]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(names(&g), want);
    let norm = |name| matches!(m.layer_of_param(name), Some(Layer::BatchNorm { .. }));
    assert!(norm("3.body.1.weight") && norm("5.shortcut.1.bias") && norm("1.weight"));
    assert!(!norm("3.body.0.weight") && !norm("5.body.0.bias"));
    for missing in [
        "9.weight",
        "3.weight",
        "3.body.7.weight",
        "3.side.0.weight",
        "x",
    ] {
        assert_eq!(m.layer_of_param(missing), None, "{missing}");
    }
}

/// The block computes body(x) + x (or + shortcut(x)), checked in f64 against the
/// same arithmetic written out.
#[test]
fn blocks_add_the_body_to_the_shortcut() {
    for (spec, projected) in [
        ("residual(linear(3,3),tanh)", false),
        (
            "residual(linear(3,3),tanh,shortcut=(linear(3,3,bias=false)))",
            true,
        ),
    ] {
        let m = Model::parse(spec).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 3]));
        let y = m.build(&mut g, x, [1, 1, 3], Mode::Eval).unwrap().output;
        let value = |id: usize| -> Vec<f64> {
            (0..g.shape(id).numel())
                .map(|k| ((id * 7 + k) as f64 * 0.61).sin())
                .collect()
        };
        let feed = |id| Some(value(id));
        let v = interpret::<f64>(&g, &feed, &StepRng { seed: 1, step: 0 }).unwrap();
        let param = |name: &str| {
            let (id, ..) = g.params().into_iter().find(|p| p.1 == name).unwrap();
            value(id)
        };
        let (w, b, xs) = (param("0.body.0.weight"), param("0.body.0.bias"), value(x));
        for r in 0..2 {
            for o in 0..3 {
                let dot = |w: &[f64]| (0..3).map(|i| w[o * 3 + i] * xs[r * 3 + i]).sum::<f64>();
                let skip = if projected {
                    dot(&param("0.shortcut.0.weight"))
                } else {
                    xs[r * 3 + o]
                };
                let want = (dot(&w) + b[o]).tanh() + skip;
                let got = v[y][r * 3 + o];
                assert!(
                    (got - want).abs() < 1e-14,
                    "{spec} [{r},{o}]: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn dropout_streams_stay_distinct_and_flat_lists_keep_their_index() {
    let streams = |spec: &str| {
        let m = Model::parse(spec).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 4]));
        m.build(&mut g, x, [1, 1, 4], Mode::Train).unwrap();
        g.nodes()
            .iter()
            .filter_map(|n| match n.kind {
                NodeKind::Op(Op::Dropout(d)) => Some(d.layer),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(streams("linear(4,4),dropout,relu,dropout(0.2)"), [1, 3]);
    let nested = streams("dropout,residual(dropout,residual(dropout),shortcut=(dropout)),dropout");
    assert_eq!(nested, [0, 2, 4, 5, 6]);
}

#[test]
fn mismatched_blocks_name_the_block_and_shapes() {
    let err = |spec: &str| {
        let m = Model::parse(spec).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 4]));
        m.build(&mut g, x, [1, 1, 4], Mode::Train)
            .unwrap_err()
            .to_string()
    };
    let e = err("relu,residual(linear(4,5),relu)");
    assert!(e.contains("layer 1 'residual(linear(4,5),relu)'"), "{e}");
    assert!(e.contains("its body gives [2, 5] but its input"), "{e}");
    let e = err("residual(linear(4,5),shortcut=(linear(4,6)))");
    assert!(
        e.contains("its body gives [2, 5] but its shortcut gives [2, 6]"),
        "{e}"
    );
    let e = err("residual(linear(4,4),residual(relu,linear(5,4)))");
    assert!(e.contains("layer 0.body.1.body.1 'linear(5,4)'"), "{e}");
    assert!(matches!(Model::parse("residual"), Err(Error::Spec { .. })));
    // The deepest nesting the parser takes builds (relu(x) + 64·x; only the structure
    // is checked here).
    let depth = crate::nn::spec::MAX_NESTING;
    let deep = format!("{}relu{}", "residual(".repeat(depth), ")".repeat(depth));
    let m = Model::parse(&deep).unwrap();
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 4]));
    let y = m.build(&mut g, x, [1, 1, 4], Mode::Train).unwrap().output;
    assert_eq!(g.shape(y), &Shape::new(&[2, 4]));
    assert!(matches!(
        Model::parse("residual()"),
        Err(Error::Spec { .. })
    ));
    assert!(matches!(
        Model::parse("residual(relu,shortcut=(swish))"),
        Err(Error::Spec { .. })
    ));
}

#[test]
fn resnet_preset_has_three_stages() {
    let m = Model::parse("resnet").unwrap();
    assert!(m.takes_images());
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 784]));
    let built = m.build(&mut g, x, [1, 28, 28], Mode::Train).unwrap();
    assert_eq!(g.shape(built.output), &Shape::new(&[2, 10]));
    // Stem, two per block and the two projections.
    assert_eq!(built.updates.len(), 1 + 2 * 3 + 2);
    let params: usize = g.params().iter().map(|p| p.2.numel()).sum();
    // Convolutions (no biases), batch-norm scales and shifts, the classifier.
    let convs = 9 * (16 + 2 * 16 * 16 + 16 * 32 + 32 * 32 + 32 * 64 + 64 * 64) + 16 * 32 + 32 * 64;
    let norms = 2 * (16 + 2 * 16 + 3 * 32 + 3 * 64);
    assert_eq!(params, convs + norms + 64 * 10 + 10);
    // Names follow the blocks; the stages widen to 32 and 64 channels.
    let names: Vec<String> = g.params().iter().map(|p| p.1.to_string()).collect();
    assert!(
        names.contains(&"7.shortcut.0.weight".to_string()),
        "{names:?}"
    );
    for (id, want) in [("5.shortcut.1.weight", 32), ("7.body.4.weight", 64)] {
        let p = g.params().into_iter().find(|p| p.1 == id).unwrap();
        assert_eq!(p.2.dims(), [want], "{id}");
    }
}
