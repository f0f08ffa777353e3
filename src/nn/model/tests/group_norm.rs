//! Group and instance norm: arguments, names, and values against group norm written out.

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
        let v = interpret::<f64>(&g, &|id| Some(value(id)), &StepRng { seed: 1, step: 0 }).unwrap();
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
                let var =
                    members.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / members.len() as f64;
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
