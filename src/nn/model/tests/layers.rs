//! Activations, PReLU, softmax and log-softmax outputs, Dropout2d.

use super::*;
use crate::op::Activation;

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
