//! Model parsing and building: layer specs, PyTorch names and shapes, the presets.

use super::*;
use crate::op::Activation;

#[test]
fn mlp_preset_has_pytorch_names_and_layouts() {
    let m = Model::parse("mlp").unwrap();
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[4, 784]));
    let y = m.build(&mut g, x, [1, 28, 28], Mode::Train).unwrap().output;
    assert_eq!(g.shape(y), &Shape::new(&[4, 10]));
    let names: Vec<(String, Shape)> = g
        .params()
        .iter()
        .map(|(_, n, s, _)| (n.to_string(), (*s).clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("0.weight".into(), Shape::new(&[256, 784])),
            ("0.bias".into(), Shape::new(&[256])),
            ("2.weight".into(), Shape::new(&[128, 256])),
            ("2.bias".into(), Shape::new(&[128])),
            ("4.weight".into(), Shape::new(&[10, 128])),
            ("4.bias".into(), Shape::new(&[10])),
        ]
    );
}

#[test]
fn mismatched_layers_name_the_layer_and_shapes() {
    let m = Model::parse("linear(784,64),relu,linear(60,10)").unwrap();
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[8, 784]));
    let err = m
        .build(&mut g, x, [1, 28, 28], Mode::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("layer 2 'linear(60,10)'"), "{err}");
    assert!(err.contains("[8, 64]"), "{err}");
}

#[test]
fn bad_arguments_are_spec_errors() {
    assert!(matches!(
        Model::parse("linear(784)"),
        Err(Error::Spec { .. })
    ));
    assert!(matches!(
        Model::parse("linear(784,0)"),
        Err(Error::Spec { .. })
    ));
    assert!(matches!(
        Model::parse("linear(784,10,bias=maybe)"),
        Err(Error::Spec { .. })
    ));
    assert!(matches!(Model::parse("relu(3)"), Err(Error::Spec { .. })));
    assert!(matches!(Model::parse("swish"), Err(Error::Spec { .. })));
    assert!(Model::parse("cnn").is_ok());
    let m = Model::parse("linear(4,3,bias=False),leaky_relu(negative_slope=0.2)").unwrap();
    assert_eq!(
        m.layers,
        vec![
            Layer::Linear {
                in_features: 4,
                out_features: 3,
                bias: false
            },
            Layer::Activation(Activation::LeakyRelu(0.2))
        ]
    );
}

#[test]
fn hard_and_soft_activations_take_pytorchs_arguments() {
    let m = Model::parse(
        "relu6,hardtanh,hardtanh(-2,max_val=0.5),hardsigmoid,hardswish,softplus,\
         softplus(beta=2,threshold=5),softplus(0.5),mish",
    )
    .unwrap();
    assert_eq!(
        m.layers,
        [
            Activation::Relu6,
            Activation::Hardtanh(-1.0, 1.0),
            Activation::Hardtanh(-2.0, 0.5),
            Activation::Hardsigmoid,
            Activation::Hardswish,
            Activation::Softplus(1.0, 20.0),
            Activation::Softplus(2.0, 5.0),
            Activation::Softplus(0.5, 20.0),
            Activation::Mish,
        ]
        .map(Layer::Activation)
    );
    for (spec, needle) in [
        ("hardtanh(1,1)", "max_val must be greater than min_val"),
        (
            "hardtanh(max_val=-2)",
            "max_val must be greater than min_val",
        ),
        ("softplus(beta=0)", "beta must not be 0"),
        ("softplus(alpha=1)", "alpha"),
        ("relu6(6)", "relu6"),
        ("mish(1)", "mish"),
    ] {
        let err = Model::parse(spec).unwrap_err();
        assert!(matches!(err, Error::Spec { .. }), "{spec}: {err}");
        assert!(err.to_string().contains(needle), "{spec}: {err}");
    }
}

/// The convolutional layers and the `cnn` preset.
mod cnn {
    use super::*;

    /// `adaptiveavgpool2d`/`adaptivemaxpool2d` against PyTorch's window rule computed by
    /// hand: window i of an output of O over an input of L spans [⌊iL/O⌋, ⌈(i+1)L/O⌉).
    #[test]
    fn adaptive_pooling_takes_pytorchs_windows() {
        let (c, h, w) = (2, 4, 6);
        for (spec, out, max) in [
            ("adaptiveavgpool2d(1)", (1, 1), false),
            ("adaptivemaxpool2d(output_size=1)", (1, 1), true),
            ("adaptiveavgpool2d((2,3))", (2, 3), false),
            ("adaptivemaxpool2d((4,2))", (4, 2), true),
            // Overlapping windows of one length and spacing (plain pooling): 4 → 3 is
            // [0,2), [1,3), [2,4), 6 → 5 is [0,2), [1,3), ..., [4,6). Two spacings (the
            // adaptive op): 6 → 4 is [0,2), [1,3), [3,5), [4,6), here with uniform rows
            // 4 → 3; 4 → 5 repeats rows.
            ("adaptiveavgpool2d((3,6))", (3, 6), false),
            ("adaptivemaxpool2d((3,5))", (3, 5), true),
            ("adaptiveavgpool2d((3,4))", (3, 4), false),
            ("adaptivemaxpool2d((5,4))", (5, 4), true),
        ] {
            let m = Model::parse(spec).unwrap();
            assert!(m.takes_images());
            let mut g = Graph::new();
            let x = g.input("x", Shape::new(&[1, c * h * w]));
            let y = m.build(&mut g, x, [c, h, w], Mode::Eval).unwrap().output;
            assert_eq!(g.shape(y), &Shape::new(&[1, c, out.0, out.1]), "{spec}");
            let data: Vec<f64> = (0..c * h * w)
                .map(|i| ((i * 7) as f64 * 0.37).sin())
                .collect();
            let feed = |id: ValueId| (id == x).then(|| data.clone());
            let got =
                &crate::graph::interpret(&g, &feed, &crate::rng::StepRng::default()).unwrap()[y];
            let window =
                |i: usize, len: usize, o: usize| (i * len / o)..((i + 1) * len).div_ceil(o);
            for ch in 0..c {
                for i in 0..out.0 {
                    for j in 0..out.1 {
                        let values: Vec<f64> = window(i, h, out.0)
                            .flat_map(|r| window(j, w, out.1).map(move |q| (r, q)))
                            .map(|(r, q)| data[(ch * h + r) * w + q])
                            .collect();
                        let want = if max {
                            values.iter().copied().fold(f64::MIN, f64::max)
                        } else {
                            values.iter().sum::<f64>() / values.len() as f64
                        };
                        let at = (ch * out.0 + i) * out.1 + j;
                        assert!((got[at] - want).abs() < 1e-12, "{spec} [{ch},{i},{j}]");
                    }
                }
            }
        }
        // 28 → 3 is [0,10), [9,19), [18,28); 7 → 3 is [0,3), [2,5), [4,7).
        assert_eq!(uniform_windows(28, 3), Some((10, 9)));
        assert_eq!(uniform_windows(7, 3), Some((3, 2)));
        assert_eq!(uniform_windows(5, 3), None);
        // Windows of two lengths (5 → 3 is [0,2), [1,4), [3,5)) run as the adaptive op.
        let m = Model::parse("adaptiveavgpool2d(3)").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[1, 25]));
        let y = m.build(&mut g, x, [1, 5, 5], Mode::Eval).unwrap().output;
        assert!(matches!(
            g.node(y).kind,
            crate::graph::NodeKind::Op(Op::AdaptiveAvgPool(_))
        ));
        assert!(matches!(
            Model::parse("adaptiveavgpool2d(0)"),
            Err(Error::Spec { .. })
        ));
    }

    #[test]
    fn cnn_preset_has_pytorch_names_and_shapes() {
        let m = Model::parse("cnn").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 784]));
        let built = m.build(&mut g, x, [1, 28, 28], Mode::Train).unwrap();
        assert_eq!(g.shape(built.output), &Shape::new(&[2, 10]));
        assert_eq!(built.updates.len(), 2);
        let names: Vec<(String, Vec<usize>)> = g
            .params()
            .iter()
            .map(|(_, n, s, _)| (n.to_string(), s.0.clone()))
            .collect();
        let expect: Vec<(&str, Vec<usize>)> = vec![
            ("0.weight", vec![32, 1, 3, 3]),
            ("0.bias", vec![32]),
            ("1.weight", vec![32]),
            ("1.bias", vec![32]),
            ("4.weight", vec![64, 32, 3, 3]),
            ("4.bias", vec![64]),
            ("5.weight", vec![64]),
            ("5.bias", vec![64]),
            ("10.weight", vec![128, 3136]),
            ("10.bias", vec![128]),
            ("12.weight", vec![10, 128]),
            ("12.bias", vec![10]),
        ];
        let expect: Vec<(String, Vec<usize>)> = expect
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        assert_eq!(names, expect);
        let buffers: Vec<&str> = g.buffers().iter().map(|b| b.1).collect();
        assert_eq!(buffers, vec!["1.running_stats", "5.running_stats"]);
    }

    #[test]
    fn flatten_mismatch_names_layer_and_shapes() {
        let spec = "conv2d(1,32,3,padding=1),batchnorm2d(32),relu,maxpool2d(2),\
conv2d(32,64,3,padding=1),batchnorm2d(64),relu,maxpool2d(2),flatten,dropout(0.25),\
linear(3000,128),relu,linear(128,10)";
        let m = Model::parse(spec).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[128, 784]));
        let err = m
            .build(&mut g, x, [1, 28, 28], Mode::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 10 'linear(3000,128)'"), "{err}");
        assert!(err.contains("[128, 3136]"), "{err}");
    }

    /// `ceil_mode` and `count_include_pad` by PyTorch's names and positions, and the output
    /// sizes of `pooling_output_shape`: 7 with window 2 and stride 2 gives 4 (the last
    /// window holds one row); 6 + 2 with window 3 and stride 2 gives 4, whose last window
    /// starts at 6 < 6 + 1; 5 with window 2 and stride 3 gives 2, because a third window
    /// would start at 6 ≥ 5.
    #[test]
    fn pooling_takes_ceil_mode_and_count_include_pad() {
        let m = Model::parse(
            "maxpool2d(2,ceil_mode=True),avgpool2d(3,2,1,True,False),avgpool2d((1,2),(1,3),0,ceil_mode=1)",
        )
        .unwrap();
        assert_eq!(
            m.layers[1],
            Layer::AvgPool2d {
                kernel: (3, 3),
                stride: (2, 2),
                padding: (1, 1),
                ceil_mode: true,
                count_include_pad: false,
            }
        );
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[1, 7 * 11]));
        let y = m.build(&mut g, x, [1, 7, 11], Mode::Eval).unwrap().output;
        // 7x11 → 4x6 → (4 + 2 − 3)/2 ↑ + 1 = 3 by (6 + 2 − 3)/2 ↑ + 1 = 4 → 3 by ⌈(4 − 2)/3⌉ + 1 = 2.
        assert_eq!(g.shape(y), &Shape::new(&[1, 1, 3, 2]));
        let g = PoolGeom {
            n: 1,
            c: 1,
            h: 5,
            w: 6,
            kh: 2,
            kw: 3,
            sh: 3,
            sw: 2,
            ph: 0,
            pw: 1,
            ceil_mode: true,
            count_include_pad: true,
        };
        assert_eq!((g.oh(), g.ow()), (2, 4));
        // The maxpool2d positions after padding are dilation and return_indices.
        let err = Model::parse("maxpool2d(2,2,0,1)").unwrap_err().to_string();
        assert!(err.contains("ceil_mode by name"), "{err}");
    }

    #[test]
    fn pooling_takes_pytorchs_padding() {
        let m = Model::parse("maxpool2d(3,stride=2,padding=1),avgpool2d((2,3),1,(1,1))").unwrap();
        assert_eq!(
            m.layers,
            [
                Layer::MaxPool2d {
                    kernel: (3, 3),
                    stride: (2, 2),
                    padding: (1, 1),
                    ceil_mode: false,
                },
                Layer::AvgPool2d {
                    kernel: (2, 3),
                    stride: (1, 1),
                    padding: (1, 1),
                    ceil_mode: false,
                    count_include_pad: true,
                }
            ]
        );
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 4 * 7 * 7]));
        let y = m.build(&mut g, x, [4, 7, 7], Mode::Eval).unwrap().output;
        // (7 + 2 − 3)/2 + 1 = 4; then (4 + 2 − 2)/1 + 1 = 5 by (4 + 2 − 3)/1 + 1 = 4.
        assert_eq!(g.shape(y), &Shape::new(&[2, 4, 5, 4]));
        // PyTorch's limit: padding at most half the window.
        let err = Model::parse("maxpool2d(3,padding=2)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most half"), "{err}");
        let err = Model::parse("avgpool2d(2,1,(1,2))")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most half"), "{err}");
        // Sizes whose padded extent or window area overflow are errors, not panics.
        for spec in [
            "maxpool2d(18446744073709551615,padding=9223372036854775807)",
            "avgpool2d(4294967296,padding=2147483648)",
        ] {
            let m = Model::parse(spec).unwrap();
            let mut g = Graph::new();
            let x = g.input("x", Shape::new(&[2, 4 * 7 * 7]));
            assert!(m.build(&mut g, x, [4, 7, 7], Mode::Eval).is_err(), "{spec}");
        }
    }

    #[test]
    fn conv_arguments_follow_pytorch() {
        let m = Model::parse(
            "conv2d(3,8,(3,5),stride=2,padding=(1,2),bias=false),maxpool2d(2,stride=1)",
        )
        .unwrap();
        assert_eq!(
            m.layers[0],
            Layer::Conv2d {
                in_channels: 3,
                out_channels: 8,
                kernel: (3, 5),
                stride: (2, 2),
                padding: (1, 2),
                dilation: (1, 1),
                groups: 1,
                bias: false
            }
        );
        assert_eq!(
            m.layers[1],
            Layer::MaxPool2d {
                kernel: (2, 2),
                stride: (1, 1),
                padding: (0, 0),
                ceil_mode: false,
            }
        );
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[1, 3 * 9 * 11]));
        let y = m.build(&mut g, x, [3, 9, 11], Mode::Eval).unwrap().output;
        // conv: (9+2-3)/2+1 = 5, (11+4-5)/2+1 = 6; pool 2 stride 1: 4 x 5.
        assert_eq!(g.shape(y), &Shape::new(&[1, 8, 4, 5]));
        // PyTorch's positions: stride, padding, dilation, groups, bias.
        let m = Model::parse("conv2d(3,8,3,1,(2,1),(2,3),1,false)").unwrap();
        assert_eq!(
            m.layers[0],
            Layer::Conv2d {
                in_channels: 3,
                out_channels: 8,
                kernel: (3, 3),
                stride: (1, 1),
                padding: (2, 1),
                dilation: (2, 3),
                groups: 1,
                bias: false
            }
        );
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[1, 3 * 9 * 11]));
        let y = m.build(&mut g, x, [3, 9, 11], Mode::Eval).unwrap().output;
        // PyTorch: (9 + 4 − 2·2 − 1) + 1 = 9, (11 + 2 − 3·2 − 1) + 1 = 7.
        assert_eq!(g.shape(y), &Shape::new(&[1, 8, 9, 7]));
        // A dilated kernel must fit: a 5x5 input holds its span 2·(3 − 1) + 1 = 5, 4x4 not.
        for (h, fits) in [(5, true), (4, false)] {
            let m = Model::parse("conv2d(1,1,3,dilation=2)").unwrap();
            let mut g = Graph::new();
            let x = g.input("x", Shape::new(&[1, h * h]));
            let built = m.build(&mut g, x, [1, h, h], Mode::Eval);
            assert_eq!(built.is_ok(), fits, "{h}x{h}");
            if let Err(e) = built {
                assert!(
                    e.to_string()
                        .contains("at least 5x5 (dilated kernel minus padding)"),
                    "{e}"
                );
            }
        }
        for bad in [
            "conv2d(1,1,3,dilation=0)",
            "conv2d(4,6,3,groups=4)",
            "conv2d(6,4,3,groups=4)",
            "conv2d(2,2,3,groups=0)",
            "conv2d(1,1,3,1,0,1,4)",
        ] {
            assert!(
                matches!(Model::parse(bad), Err(Error::Spec { .. })),
                "{bad}"
            );
        }
        let Err(e) = Model::parse("conv2d(4,6,3,groups=4)") else {
            unreachable!()
        };
        assert!(
            e.to_string()
                .contains("groups=4 must divide in_channels (4) and out_channels (6)"),
            "{e}"
        );
        assert!(Model::parse("conv2d(1,1,3,groups=1)").is_ok());
    }
}

/// Residual blocks: names, shapes, values, dropout streams and shape errors.
mod residual {
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
        let nested =
            streams("dropout,residual(dropout,residual(dropout),shortcut=(dropout)),dropout");
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

/// `conv2d(..., groups=G)`: PyTorch's weight shape [OC, C/G, KH, KW] and fan-in, one
/// `GroupedConv` op (no im2col), and values equal to G dense convolutions of the groups.
#[test]
fn grouped_conv_has_pytorch_shapes_and_the_value_of_per_group_convolutions() {
    use crate::graph::{interpret, NodeKind};
    use crate::rng::StepRng;
    let m = Model::parse("conv2d(4,6,3,padding=1,groups=2)").unwrap();
    assert!(matches!(m.layers[0], Layer::Conv2d { groups: 2, .. }));
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 4 * 5 * 5]));
    let y = m.build(&mut g, x, [4, 5, 5], Mode::Train).unwrap().output;
    assert_eq!(g.shape(y), &Shape::new(&[2, 6, 5, 5]));
    let params = g.params();
    assert_eq!(params[0].1, "0.weight");
    assert_eq!(params[0].2.dims(), [6, 2, 3, 3]);
    // PyTorch's bound 1/sqrt(fan_in) with fan_in = C/G·KH·KW = 18.
    assert_eq!(
        params[0].3,
        Init::Uniform {
            bound: 1.0 / 18f32.sqrt()
        }
    );
    let ops: Vec<Op> = g
        .nodes()
        .iter()
        .filter_map(|n| match n.kind {
            NodeKind::Op(op) => Some(op),
            _ => None,
        })
        .collect();
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::GroupedConv(gg) if gg.groups == 2)));
    assert!(!ops.iter().any(|op| matches!(op, Op::Im2Col(_))));
    // Against the same weights as two dense layers, one per group of 2 channels.
    let value = |id: usize, len: usize| -> Vec<f64> {
        (0..len)
            .map(|k| ((id * 31 + k) as f64 * 0.37).sin())
            .collect()
    };
    let (wid, bid) = (params[0].0, params[1].0);
    let feed = |id: usize| Some(value(id, g.shape(id).numel()));
    let got = &interpret::<f64>(&g, &feed, &StepRng { seed: 0, step: 0 }).unwrap()[y];
    let (xs, ws, bs) = (value(x, 200), value(wid, 108), value(bid, 6));
    for n in 0..2 {
        for o in 0..6 {
            let group = o / 3;
            for oy in 0..5usize {
                for ox in 0..5usize {
                    let mut want = bs[o];
                    for c in 0..2 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((oy + ky) as isize - 1, (ox + kx) as isize - 1);
                                if iy < 0 || ix < 0 || iy >= 5 || ix >= 5 {
                                    continue;
                                }
                                let xi =
                                    ((n * 4 + group * 2 + c) * 5 + iy as usize) * 5 + ix as usize;
                                want += xs[xi] * ws[((o * 2 + c) * 3 + ky) * 3 + kx];
                            }
                        }
                    }
                    let at = ((n * 6 + o) * 5 + oy) * 5 + ox;
                    assert!((got[at] - want).abs() < 1e-12, "[{n},{o},{oy},{ox}]");
                }
            }
        }
    }
}

/// PReLU's weight is PyTorch's `N.weight` of `num_parameters` slopes filled with `init`,
/// and its value is x or slope·x, per channel or for all.
#[test]
fn prelu_has_pytorchs_weight_and_values() {
    use crate::graph::interpret;
    use crate::rng::StepRng;
    assert_eq!(
        Model::parse("prelu,prelu(4,0.5),prelu(num_parameters=2,init=-1)")
            .unwrap()
            .layers,
        [(1, 0.25), (4, 0.5), (2, -1.0)].map(|(num_parameters, init)| Layer::PRelu {
            num_parameters,
            init
        })
    );
    for (spec, slopes) in [
        ("conv2d(1,3,1,bias=false),prelu(3)", 3),
        ("conv2d(1,3,1,bias=false),prelu", 1),
    ] {
        let m = Model::parse(spec).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 4]));
        let y = m.build(&mut g, x, [1, 2, 2], Mode::Train).unwrap().output;
        let params: Vec<_> = g
            .params()
            .iter()
            .map(|p| (p.1.to_string(), p.2.dims().to_vec(), p.3))
            .collect();
        assert_eq!(
            params[1],
            ("1.weight".to_string(), vec![slopes], Init::Constant(0.25))
        );
        let value = |id: usize| -> Vec<f64> {
            (0..g.shape(id).numel())
                .map(|k| ((id * 7 + k) as f64 * 0.61).sin())
                .collect()
        };
        let v = interpret::<f64>(&g, &|id| Some(value(id)), &StepRng { seed: 1, step: 0 }).unwrap();
        let (w, a, xs) = (
            value(params_id(&g, "0.weight")),
            value(params_id(&g, "1.weight")),
            value(x),
        );
        for n in 0..2 {
            for c in 0..3 {
                for p in 0..4 {
                    let h = w[c] * xs[n * 4 + p];
                    let want = if h > 0.0 { h } else { a[c % slopes] * h };
                    assert_eq!(v[y][(n * 3 + c) * 4 + p], want, "{spec}");
                }
            }
        }
    }
    // On [N, C] features a slope per feature, as PyTorch's dimension 1.
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 4]));
    let y = Model::parse("prelu(4)")
        .unwrap()
        .build(&mut g, x, [1, 1, 4], Mode::Train);
    assert_eq!(g.shape(y.unwrap().output), &Shape::new(&[2, 4]));
    let err = Model::parse("flatten,prelu(3)")
        .unwrap()
        .build(&mut g, x, [1, 2, 2], Mode::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[batch, 3, ...]"), "{err}");
}

/// The id of parameter `name` of `g`.
fn params_id(g: &Graph, name: &str) -> usize {
    g.params()
        .iter()
        .find(|p| p.1 == name)
        .map(|p| p.0)
        .unwrap()
}

#[test]
fn softmax_and_log_softmax_end_a_model() {
    for (spec, op) in [
        ("linear(4,3),softmax", Op::Softmax),
        ("linear(4,3),logsoftmax(dim=1)", Op::LogSoftmax),
        ("linear(4,3),logsoftmax(-1)", Op::LogSoftmax),
    ] {
        let m = Model::parse(spec).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 4]));
        let y = m.build(&mut g, x, [1, 1, 4], Mode::Train).unwrap().output;
        assert_eq!(g.node(y).kind, crate::graph::NodeKind::Op(op), "{spec}");
    }
    let err = Model::parse("logsoftmax(dim=0)").unwrap_err().to_string();
    assert!(
        err.contains("logsoftmax is over the last dimension"),
        "{err}"
    );
    // dim=1 of [N, C, H, W] is the channels, which the kernels do not normalise over.
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 16]));
    for (spec, ok) in [
        ("conv2d(1,2,3),softmax(dim=1)", false),
        ("conv2d(1,2,3),logsoftmax(1)", false),
        ("conv2d(1,2,3),logsoftmax(dim=-1)", true),
    ] {
        let built = Model::parse(spec)
            .unwrap()
            .build(&mut g, x, [1, 4, 4], Mode::Train);
        assert_eq!(built.is_ok(), ok, "{spec}");
    }
}

#[test]
fn dropout2d_takes_images_and_one_draw_per_channel() {
    let m = Model::parse("conv2d(1,3,3),dropout2d(0.2),flatten,linear(12,2)").unwrap();
    assert_eq!(
        m.layers[1],
        Layer::Dropout {
            p: 0.2,
            channels: true
        }
    );
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 16]));
    m.build(&mut g, x, [1, 4, 4], Mode::Train).unwrap();
    let specs: Vec<_> = g
        .nodes()
        .iter()
        .filter_map(|n| match n.kind {
            crate::graph::NodeKind::Op(Op::Dropout(s)) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(
        specs,
        [DropoutSpec {
            p: 0.2,
            layer: 1,
            per: 4
        }]
    );
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[2, 16]));
    let err = Model::parse("flatten,dropout2d")
        .unwrap()
        .build(&mut g, x, [1, 4, 4], Mode::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[batch, channels, height, width]"), "{err}");
    // First in a model it takes the images, as a conv2d does.
    assert!(Model::parse("dropout2d,conv2d(1,2,3)")
        .unwrap()
        .takes_images());
}

/// Group and instance norm: arguments, names, and values against group norm written out.
mod group_norm {
    use super::*;
    use crate::graph::interpret;
    use crate::rng::StepRng;

    #[test]
    fn group_and_instance_norm_take_pytorchs_arguments() {
        let m = Model::parse(
            "groupnorm(2,8),groupnorm(4,8,1e-3,False),groupnorm(num_groups=1,num_channels=8,\
             eps=0.01),instancenorm2d(8),instancenorm2d(8,1e-3,0.2,True)",
        )
        .unwrap();
        let gn = |num_groups, eps, affine, instance| Layer::GroupNorm {
            num_groups,
            num_channels: 8,
            eps,
            affine,
            instance,
        };
        assert_eq!(
            m.layers,
            [
                gn(2, 1e-5, true, false),
                gn(4, 1e-3, false, false),
                gn(1, 0.01, true, false),
                gn(8, 1e-5, false, true),
                gn(8, 1e-3, true, true),
            ]
        );
        assert!(Model::parse("instancenorm2d(3),flatten")
            .unwrap()
            .takes_images());
        assert!(Model::parse("instancenorm2d(3,momentum=None)").is_ok());
        for (spec, needle) in [
            ("groupnorm(3,8)", "divisible by num_groups (3)"),
            ("groupnorm(2)", "needs 'num_channels'"),
            ("groupnorm(0,8)", "positive integer"),
            (
                "instancenorm2d(4,track_running_stats=True)",
                "not supported",
            ),
            (
                "instancenorm2d(4,momentum=x)",
                "'momentum' must be a number",
            ),
        ] {
            let err = Model::parse(spec).unwrap_err();
            assert!(matches!(err, Error::Spec { .. }), "{spec}: {err}");
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
        // InstanceNorm2d wants images, as PyTorch's; GroupNorm takes [N, C] too.
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 8]));
        let err = Model::parse("instancenorm2d(8)")
            .unwrap()
            .build(&mut g, x, [1, 1, 8], Mode::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[batch, 8, height, width]"), "{err}");
        let x = g.input("x2", Shape::new(&[2, 8]));
        let y = Model::parse("groupnorm(2,8)")
            .unwrap()
            .build(&mut g, x, [1, 1, 8], Mode::Train);
        assert_eq!(g.shape(y.unwrap().output), &Shape::new(&[2, 8]));
        // One spatial element per channel: refused in training, as PyTorch does, not in
        // evaluation.
        let one_pixel = Model::parse("conv2d(1,4,2),instancenorm2d(4)").unwrap();
        let x = g.input("x3", Shape::new(&[2, 4]));
        let err = one_pixel
            .build(&mut g, x, [1, 2, 2], Mode::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1 spatial element"), "{err}");
        assert!(one_pixel.build(&mut g, x, [1, 2, 2], Mode::Eval).is_ok());
    }

    /// `y[n, c, s] = (x − mean)/sqrt(var + eps)·weight[c] + bias[c]` over each sample's group
    /// of C/G channels (biased variance), in f64, against the built graph; and the
    /// parameters' names and shapes, which PyTorch's state_dict has.
    #[test]
    fn group_norm_normalises_each_group_of_each_sample() {
        // The layer keeps eps in f32, as PyTorch's modules hold a Python float that the
        // f32 kernel rounds.
        let (n, c, hw, eps) = (2, 6, 4, f64::from(1e-3f32));
        for (spec, groups, affine) in [
            ("conv2d(1,6,1,bias=false),groupnorm(3,6,eps=1e-3)", 3, true),
            (
                "conv2d(1,6,1,bias=false),groupnorm(1,6,1e-3,False)",
                1,
                false,
            ),
            (
                "conv2d(1,6,1,bias=false),instancenorm2d(6,1e-3,affine=True)",
                6,
                true,
            ),
        ] {
            let m = Model::parse(spec).unwrap();
            let mut g = Graph::new();
            let x = g.input("x", Shape::new(&[n, hw]));
            let y = m.build(&mut g, x, [1, 2, 2], Mode::Train).unwrap().output;
            let names: Vec<_> = g.params().iter().map(|p| p.1.to_string()).collect();
            let mut want = vec!["0.weight".to_string()];
            if affine {
                want.extend(["1.weight".to_string(), "1.bias".to_string()]);
            }
            assert_eq!(names, want, "{spec}");
            let value = |id: usize| -> Vec<f64> {
                (0..g.shape(id).numel())
                    .map(|k| ((id * 7 + k) as f64 * 0.61).sin() * 2.0)
                    .collect()
            };
            let v =
                interpret::<f64>(&g, &|id| Some(value(id)), &StepRng { seed: 1, step: 0 }).unwrap();
            let param = |name: &str| {
                let (id, ..) = g.params().into_iter().find(|p| p.1 == name).unwrap();
                value(id)
            };
            // The 1x1 convolution's output, written out: h[n, c, s] = w[c]·x[n, s].
            let (w, xs) = (param("0.weight"), value(x));
            let h = |ni: usize, ci: usize, s: usize| w[ci] * xs[ni * hw + s];
            let per = c / groups;
            for ni in 0..n {
                for gi in 0..groups {
                    let members: Vec<f64> = (gi * per..(gi + 1) * per)
                        .flat_map(|ci| (0..hw).map(move |s| (ci, s)))
                        .map(|(ci, s)| h(ni, ci, s))
                        .collect();
                    let mean = members.iter().sum::<f64>() / members.len() as f64;
                    let var = members.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                        / members.len() as f64;
                    for ci in gi * per..(gi + 1) * per {
                        let (scale, shift) = if affine {
                            (param("1.weight")[ci], param("1.bias")[ci])
                        } else {
                            (1.0, 0.0)
                        };
                        for s in 0..hw {
                            let want = (h(ni, ci, s) - mean) / (var + eps).sqrt() * scale + shift;
                            let got = v[y][(ni * c + ci) * hw + s];
                            assert!((got - want).abs() < 1e-12, "{spec}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
