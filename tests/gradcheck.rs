//! Gradient checks: every differentiable op of the shared table placed mid-graph
//! (a scale before it, a loss after it), its autodiff gradient evaluated in f64 by the
//! reference interpreter and compared with central finite differences; likewise a whole
//! model of nested residual blocks, where values fan out and gradients are summed.

use kiln::graph::{gradients, interpret, Graph, ValueId};
use kiln::nn::{Init, Mode, Model};
use kiln::op::Op;
use kiln::parity::{cases, InputKind};
use kiln::rng::StepRng;
use kiln::shape::Shape;

/// Dropout masks are fixed for a given step, so the loss is a smooth function of the inputs.
const RNG: StepRng = StepRng { seed: 99, step: 4 };

/// Every value of `g` in f64, `feeds` giving the inputs and parameters.
fn eval(g: &Graph, feeds: &[(ValueId, Vec<f64>)]) -> Vec<Vec<f64>> {
    let feed = |id| feeds.iter().find(|(v, _)| *v == id).map(|(_, d)| d.clone());
    interpret::<f64>(g, &feed, &RNG).unwrap()
}

/// d`loss`/d(element `j` of the fed value `p`) by central differences (step 1e-6).
fn central_difference(
    g: &Graph,
    feeds: &[(ValueId, Vec<f64>)],
    loss: ValueId,
    p: ValueId,
    j: usize,
) -> f64 {
    let h = 1e-6;
    let fi = feeds.iter().position(|(v, _)| *v == p).unwrap();
    let (mut plus, mut minus) = (feeds.to_vec(), feeds.to_vec());
    plus[fi].1[j] += h;
    minus[fi].1[j] -= h;
    (eval(g, &plus)[loss][0] - eval(g, &minus)[loss][0]) / (2.0 * h)
}

#[test]
fn autodiff_matches_central_differences_for_every_op() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (ci, case) in cases().iter().enumerate() {
        let diff = case.op.differentiable_inputs();
        let numel: usize = case.inputs.iter().map(|(s, _)| s.numel()).sum();
        if diff.is_empty() || numel > 5000 {
            continue;
        }
        let inputs = case.make_inputs(7 + ci as u64);
        let mut g = Graph::new();
        let mut feeds: Vec<(ValueId, Vec<f64>)> = Vec::new();
        let mut args = Vec::new();
        let mut params = Vec::new();
        for (i, ((shape, kind), data)) in case.inputs.iter().zip(&inputs).enumerate() {
            let data64: Vec<f64> = data.iter().map(|&x| f64::from(x)).collect();
            if diff.contains(&i) {
                let p = g.param(&format!("p{i}"), shape.clone(), Init::Constant(0.0));
                feeds.push((p, data64));
                params.push(p);
                // Mid-graph: an op before the one under test.
                args.push(g.op(Op::Scale(0.9), &[p]).unwrap());
            } else {
                assert!(matches!(kind, InputKind::Labels(_)) || !diff.contains(&i));
                let x = g.input(&format!("x{i}"), shape.clone());
                feeds.push((x, data64));
                args.push(x);
            }
        }
        if let Op::BatchNormApply(ch) = case.op {
            // Batch norm is differentiated through its own batch statistics (training mode).
            args[1] = g.op(Op::BatchNormStats(ch), &[args[0]]).unwrap();
        }
        let y = g
            .op_with_shape(case.op, &args, case.target.as_ref())
            .unwrap();
        let loss = if g.shape(y).numel() == 1 {
            g.op(Op::Scale(1.3), &[y]).unwrap()
        } else {
            let t = g.input("target", g.shape(y).clone());
            let n = g.shape(y).numel();
            feeds.push((t, (0..n).map(|j| ((j as f64) * 0.37).sin()).collect()));
            g.op(Op::Mse, &[y, t]).unwrap()
        };
        let grads = gradients(&mut g, loss).unwrap();
        let values = eval(&g, &feeds);
        for &(p, gid) in &grads {
            let n = feeds.iter().find(|(v, _)| *v == p).unwrap().1.len();
            let stride = (n / 24).max(1);
            for j in (0..n).step_by(stride) {
                let numeric = central_difference(&g, &feeds, loss, p, j);
                let analytic = values[gid][j];
                let tol = 1e-6 + 1e-5 * numeric.abs().max(analytic.abs());
                if (numeric - analytic).abs() > tol {
                    failures.push(format!(
                        "{} {} input {p} element {j}: analytic {analytic:.9e} numeric {numeric:.9e}",
                        case.op.name(),
                        case.shapes()
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} gradient mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 700, "only {checked} gradient elements checked");
    eprintln!("{checked} gradient elements checked");
}

#[test]
fn gradient_of_a_shared_parameter_is_summed() {
    // loss = sum(p) + sum(p) = 2·Σp, so dL/dp = 2 everywhere.
    let mut g = Graph::new();
    let p = g.param("p", Shape::new(&[3]), Init::Constant(0.0));
    let a = g.op(Op::Sum, &[p]).unwrap();
    let b = g.op(Op::Sum, &[p]).unwrap();
    let loss = g.op(Op::Add, &[a, b]).unwrap();
    let grads = gradients(&mut g, loss).unwrap();
    let v = interpret::<f64>(&g, &|id| (id == p).then(|| vec![1.0, -2.0, 0.5]), &RNG).unwrap();
    assert_eq!(v[grads[0].1], vec![2.0, 2.0, 2.0]);
}

/// Checks every parameter gradient of `spec`, built on a parameter input `x` of `x_shape`
/// (samples of `sample`) under an MSE loss against `target`, against central differences;
/// returns how many elements were checked.
fn model_gradients_match_central_differences(
    spec: &str,
    x_shape: &[usize],
    sample: [usize; 3],
    target: &[f64],
) -> usize {
    let model = Model::parse(spec).unwrap();
    let mut g = Graph::new();
    let x = g.param("x", Shape::new(x_shape), Init::Constant(0.0));
    let y = model.build(&mut g, x, sample, Mode::Train).unwrap().output;
    let t = g.input("target", g.shape(y).clone());
    let loss = g.op(Op::Mse, &[y, t]).unwrap();
    let grads = gradients(&mut g, loss).unwrap();
    let mut feeds: Vec<(ValueId, Vec<f64>)> = g
        .params()
        .iter()
        .map(|&(id, _, shape, _)| {
            let v = (0..shape.numel())
                .map(|k| ((id * 13 + k) as f64 * 0.7).sin())
                .collect();
            (id, v)
        })
        .collect();
    feeds.push((t, target.to_vec()));
    assert_eq!(
        grads.len(),
        feeds.len() - 1,
        "every parameter reaches the loss"
    );
    let values = eval(&g, &feeds);
    let mut checked = 0;
    for &(p, gid) in &grads {
        for (j, &analytic) in values[gid].iter().enumerate() {
            let numeric = central_difference(&g, &feeds, loss, p, j);
            let tol = 1e-8 + 1e-6 * numeric.abs().max(analytic.abs());
            assert!(
                (numeric - analytic).abs() <= tol,
                "{} element {j}: analytic {analytic:.9e} numeric {numeric:.9e}",
                g.node(p).label
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn residual_model_gradients_match_central_differences() {
    // The input is a parameter too: it reaches the loss through each block's body and its
    // identity shortcut, and its gradient is the sum of both.
    let spec = "residual(linear(3,4),tanh,linear(4,3)),layernorm(3),\
residual(linear(3,2),gelu,residual(linear(2,2),sigmoid),shortcut=(linear(3,2,bias=false))),\
linear(2,2)";
    let target = [0.3, -0.2, 0.5, 0.1, -0.4, 0.2];
    assert_eq!(
        model_gradients_match_central_differences(spec, &[3, 3], [1, 1, 3], &target),
        9 + 12 + 4 + 12 + 3 + 3 + 3 + 6 + 2 + 4 + 2 + 6 + 4 + 2
    );
}

#[test]
fn prelu_gradients_match_central_differences() {
    // A slope per channel on images, then one slope for all features of [N, 2].
    let spec = "conv2d(2,3,3,padding=1),prelu(3,init=0.1),flatten,linear(27,2),prelu";
    let target = [0.3, -0.2, 0.5, 0.1];
    assert_eq!(
        model_gradients_match_central_differences(spec, &[2, 2, 3, 3], [2, 3, 3], &target),
        36 + 54 + 3 + 3 + 54 + 2 + 1
    );
}

#[test]
fn group_and_instance_norm_gradients_match_central_differences() {
    // Group norm over 3 groups of 2 channels of 3x3 images, instance norm with its affine,
    // and group norm on [N, C] features in one group without affine; the input is a
    // parameter, so its gradient through every normalisation is checked too.
    let spec = "conv2d(4,6,3,padding=1),groupnorm(3,6),tanh,instancenorm2d(6,affine=True),\
flatten,linear(54,3),groupnorm(1,3,affine=False),linear(3,2)";
    let target = [0.3, -0.2, 0.5, 0.1];
    assert_eq!(
        model_gradients_match_central_differences(spec, &[2, 4, 3, 3], [4, 3, 3], &target),
        72 + 216 + 6 + 6 + 6 + 6 + 6 + 162 + 3 + 6 + 2
    );
}
