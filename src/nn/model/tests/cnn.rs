//! The convolutional layers, the `cnn` preset and grouped convolution.

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
        let got = &crate::graph::interpret(&g, &feed, &crate::rng::StepRng::default()).unwrap()[y];
        let window = |i: usize, len: usize, o: usize| (i * len / o)..((i + 1) * len).div_ceil(o);
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
    let m =
        Model::parse("conv2d(3,8,(3,5),stride=2,padding=(1,2),bias=false),maxpool2d(2,stride=1)")
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
