//! Tests of the initialisers: bounds, variances, orthogonality, determinism, parsing.

use super::*;

#[test]
fn uniform_stays_in_bounds_and_spreads() {
    let mut v = vec![0.0; 10_000];
    Init::Uniform { bound: 0.25 }.fill(&mut v, 3, 0);
    assert!(v.iter().all(|x| x.abs() <= 0.25));
    let var: f32 = v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
    // Var of U(-b, b) = b²/3 ≈ 0.0208; the sampling error for 10k draws is under 3%.
    assert!((var - 0.0625 / 3.0).abs() < 0.0208 * 0.05, "var {var}");
}

#[test]
fn normal_has_unit_variance() {
    let mut v = vec![0.0; 20_000];
    Init::Normal { std: 2.0 }.fill(&mut v, 1, 1);
    let mean: f32 = v.iter().sum::<f32>() / v.len() as f32;
    let var: f32 = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
    assert!(mean.abs() < 0.1, "mean {mean}");
    assert!((var - 4.0).abs() < 0.2, "var {var}");
}

/// Asserts that the sample mean and variance of `v` are within 5 standard errors of a
/// distribution's `mean`, `var` and fourth central moment `m4`: the sample mean has
/// standard error sqrt(var/n), the sample variance sqrt((m4 − var²)/n).
fn assert_moments(v: &[f32], mean: f64, var: f64, m4: f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let s = v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n;
    let se_mean = (var / n).sqrt();
    let se_var = ((m4 - var * var) / n).sqrt();
    assert!(
        (m - mean).abs() < 5.0 * se_mean,
        "mean {m} vs {mean} (se {se_mean})"
    );
    assert!(
        (s - var).abs() < 5.0 * se_var,
        "variance {s} vs {var} (se {se_var})"
    );
}

/// U(−b, b): variance b²/3, fourth central moment b⁴/5.
fn assert_uniform(v: &[f32], bound: f64) {
    assert!(
        v.iter().all(|&x| f64::from(x).abs() <= bound),
        "a draw outside ±{bound}"
    );
    // Of n uniform draws, none within 1% of the edge has probability 0.99ⁿ ≈ 0 here.
    let top = v.iter().fold(0.0f64, |t, &x| t.max(f64::from(x).abs()));
    assert!(
        top > 0.99 * bound,
        "largest draw {top} far below the bound {bound}"
    );
    assert_moments(v, 0.0, bound * bound / 3.0, bound.powi(4) / 5.0);
}

/// N(0, std²): fourth central moment 3·std⁴.
fn assert_normal(v: &[f32], std: f64) {
    let var = std * std;
    assert_moments(v, 0.0, var, 3.0 * var * var);
}

fn filled(init: Init, shape: &[usize], seed: u64) -> Vec<f32> {
    let mut v = vec![0.0; shape.iter().product()];
    init.fill_shaped(&mut v, shape, seed, 0).unwrap();
    v
}

fn scheme(text: &str) -> Init {
    match parse_init(text).unwrap() {
        InitScheme::Use(init) => init,
        InitScheme::Default => panic!("{text} parsed as default"),
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn gains_match_calculate_gain() {
    let cases = [
        (Nonlinearity::Relu, 2.0f64.sqrt()),
        (
            Nonlinearity::LeakyRelu {
                negative_slope: 0.2,
            },
            (2.0f64 / 1.04).sqrt(),
        ),
        // kaiming's default a = 0 makes leaky_relu's gain that of relu.
        (
            Nonlinearity::LeakyRelu {
                negative_slope: 0.0,
            },
            2.0f64.sqrt(),
        ),
        (Nonlinearity::Tanh, 5.0 / 3.0),
        (Nonlinearity::Selu, 0.75),
        (Nonlinearity::Linear, 1.0),
        (Nonlinearity::Sigmoid, 1.0),
    ];
    for (nl, want) in cases {
        assert!(
            close(nl.gain(), want, 1e-8),
            "{nl}: {} vs {want}",
            nl.gain()
        );
    }
    // f32 slope 0.2 is 0.2000000030, so its gain differs from the f64 one by ~1e-9.
    assert!(
        (Nonlinearity::LeakyRelu {
            negative_slope: 0.2
        }
        .gain()
            - 1.386_750_490_563_073)
            .abs()
            < 1e-8
    );
}

#[test]
fn fans_follow_pytorch() {
    assert_eq!(fan_in_and_fan_out(&[256, 784]).unwrap(), (784, 256));
    assert_eq!(fan_in_and_fan_out(&[64, 32, 3, 3]).unwrap(), (288, 576));
    assert_eq!(fan_in_and_fan_out(&[8, 4, 5]).unwrap(), (20, 40));
    for bad in [&[10usize][..], &[]] {
        let err = fan_in_and_fan_out(bad).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(err.to_string().contains("fewer than 2 dimensions"), "{err}");
    }
}

#[test]
fn kaiming_uniform_bound_and_variance() {
    let init = scheme("kaiming_uniform:nonlinearity=relu");
    // bound = gain·sqrt(3/fan_in) = sqrt(2)·sqrt(3/784) = sqrt(6/784).
    let bound = (6.0f64 / 784.0).sqrt();
    let Init::Uniform { bound: got } = init.resolve(&[256, 784]).unwrap() else {
        panic!("kaiming_uniform did not resolve to Uniform");
    };
    assert!(close(f64::from(got), bound, 1e-6), "{got} vs {bound}");
    assert!(close(bound, 0.087_481_777_9, 1e-8));
    assert_uniform(&filled(init, &[256, 784], 11), f64::from(got));
}

#[test]
fn kaiming_uniform_with_sqrt5_is_the_linear_default() {
    // nn.Linear's kaiming_uniform_(a=sqrt(5)): gain sqrt(2/6), bound 1/sqrt(fan_in).
    let init = Init::Kaiming {
        distribution: Distribution::Uniform,
        mode: FanMode::FanIn,
        nonlinearity: Nonlinearity::LeakyRelu {
            negative_slope: 5.0f32.sqrt(),
        },
    };
    let Init::Uniform { bound } = init.resolve(&[64, 32, 3, 3]).unwrap() else {
        panic!("not Uniform");
    };
    assert!(
        close(f64::from(bound), 1.0 / 288.0f64.sqrt(), 1e-6),
        "{bound}"
    );
}

#[test]
fn kaiming_normal_fan_out_variance() {
    let init = scheme("kaiming_normal:mode=fan_out,nonlinearity=relu");
    // std = sqrt(2)/sqrt(fan_out), fan_out = 64·9 = 576.
    let std = (2.0f64 / 576.0).sqrt();
    assert_eq!(
        init.resolve(&[64, 32, 3, 3]).unwrap(),
        Init::Normal { std: std as f32 }
    );
    assert_normal(&filled(init, &[64, 32, 3, 3], 5), std);
    // With tanh, fan_in [256, 784]: std = (5/3)/28.
    let init = scheme("kaiming_normal:nonlinearity=tanh");
    assert_normal(&filled(init, &[256, 784], 6), 5.0 / 3.0 / 28.0);
}

#[test]
fn xavier_bounds_and_variances() {
    // a = sqrt(6/(fan_in + fan_out)) = sqrt(6/1040).
    let bound = (6.0f64 / 1040.0).sqrt();
    let init = scheme("xavier_uniform:gain=1.0");
    let v = filled(init, &[256, 784], 7);
    assert_uniform(&v, bound * (1.0 + 1e-6));
    let var = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / v.len() as f64;
    assert!(
        (var - 2.0 / 1040.0).abs() < 5.0 * (4.0 / 45.0 / v.len() as f64).sqrt() * bound * bound
    );
    // gain 2, fans 288 + 576: std = 2·sqrt(2/864) = sqrt(1/108).
    let std = (1.0f64 / 108.0).sqrt();
    let init = scheme("xavier_normal:gain=2");
    let Init::Normal { std: got } = init.resolve(&[64, 32, 3, 3]).unwrap() else {
        panic!("xavier_normal did not resolve to Normal");
    };
    assert!(close(f64::from(got), std, 1e-6), "{got} vs {std}");
    assert_normal(&filled(init, &[64, 32, 3, 3], 8), std);
}

#[test]
fn resolved_and_shaped_fills_draw_the_same_numbers() {
    let init = scheme("kaiming_uniform:a=0.2,mode=fan_out");
    let shape = [32, 16, 3, 3];
    let direct = filled(init, &shape, 9);
    let mut via = vec![0.0; direct.len()];
    init.resolve(&shape).unwrap().fill(&mut via, 9, 0);
    assert_eq!(direct, via);
}

#[test]
fn uniform_range_and_gaussian() {
    let v = filled(scheme("uniform:a=1,b=3"), &[50_000], 1);
    assert!(v.iter().all(|&x| (1.0..=3.0).contains(&x)));
    // U(1, 3): mean 2, half-width 1 so variance 1/3 and m4 1/5.
    assert_moments(&v, 2.0, 1.0 / 3.0, 0.2);
    let v = filled(scheme("normal:mean=-1,std=0.5"), &[50_000], 2);
    assert_moments(&v, -1.0, 0.25, 3.0 * 0.0625);
    let v = filled(scheme("normal:std=0.02"), &[50_000], 3);
    assert_normal(&v, 0.02);
}

#[test]
fn constants() {
    assert!(filled(scheme("zeros"), &[4, 5], 0)
        .iter()
        .all(|&x| x == 0.0));
    assert!(filled(scheme("ones"), &[7], 0).iter().all(|&x| x == 1.0));
    assert!(filled(scheme("constant:value=0.5"), &[3, 2, 2], 0)
        .iter()
        .all(|&x| x == 0.5));
}

/// max |(M·Mᵀ)[i][j]/gain² − δᵢⱼ| over the Gram matrix of the rows (or of the columns
/// when `columns`), computed in f64 from the f32 values.
fn gram_error(q: &[f32], rows: usize, cols: usize, gain: f64, columns: bool) -> f64 {
    let at = |i: usize, j: usize| f64::from(q[i * cols + j]) / gain;
    let (k, len) = if columns { (cols, rows) } else { (rows, cols) };
    let mut worst = 0.0f64;
    for a in 0..k {
        for b in 0..k {
            let dot: f64 = (0..len)
                .map(|t| {
                    if columns {
                        at(t, a) * at(t, b)
                    } else {
                        at(a, t) * at(b, t)
                    }
                })
                .sum();
            let want = if a == b { 1.0 } else { 0.0 };
            worst = worst.max((dot - want).abs());
        }
    }
    worst
}

#[test]
fn orthogonal_is_orthonormal_times_gain() {
    for (shape, gain) in [
        (&[3usize, 5][..], 1.0f32),
        (&[5, 3], 1.0),
        (&[64, 32, 3, 3], 1.0),
        (&[3, 5], 2.0),
        (&[5, 3], 0.5),
        (&[64, 32, 3, 3], 1.5),
        (&[40, 40], 1.0),
    ] {
        let rows = shape[0];
        let cols = shape.iter().product::<usize>() / rows;
        let q = filled(Init::Orthogonal { gain }, shape, 21);
        let g = f64::from(gain);
        if rows <= cols {
            let e = gram_error(&q, rows, cols, g, false);
            assert!(e < 1e-5, "{shape:?} gain {gain}: Q·Qᵀ off by {e}");
        }
        if rows >= cols {
            let e = gram_error(&q, rows, cols, g, true);
            assert!(e < 1e-5, "{shape:?} gain {gain}: Qᵀ·Q off by {e}");
        }
    }
}

/// The result is PyTorch's factorisation of the normal matrix it drew: A = Q·R (tall
/// orientation) with R upper triangular and its diagonal positive, which together with
/// orthonormality makes Q unique.
#[test]
fn orthogonal_is_the_positive_diagonal_qr_of_the_drawn_matrix() {
    for (rows, cols) in [(5usize, 3usize), (3, 5), (6, 6)] {
        let q = filled(Init::Orthogonal { gain: 1.0 }, &[rows, cols], 4);
        let mut rng = Philox::new(4, 0);
        let a: Vec<f64> = (0..rows * cols).map(|_| f64::from(rng.normal())).collect();
        // Tall views: T = A (or Aᵀ when wide) is m×n, Qt = q (or qᵀ) is m×n.
        let wide = rows < cols;
        let (m, n) = if wide { (cols, rows) } else { (rows, cols) };
        let t = |i: usize, j: usize| {
            if wide {
                a[j * cols + i]
            } else {
                a[i * cols + j]
            }
        };
        let qt = |i: usize, j: usize| {
            f64::from(if wide {
                q[j * cols + i]
            } else {
                q[i * cols + j]
            })
        };
        // R = Qtᵀ·T.
        let r = |i: usize, j: usize| (0..m).map(|k| qt(k, i) * t(k, j)).sum::<f64>();
        for i in 0..n {
            assert!(r(i, i) > 1e-3, "R[{i}][{i}] = {} not positive", r(i, i));
            for j in 0..i {
                assert!(
                    r(i, j).abs() < 1e-5,
                    "R[{i}][{j}] = {} below the diagonal",
                    r(i, j)
                );
            }
        }
        // Qt·R reproduces T, so Q spans A's columns.
        for i in 0..m {
            for j in 0..n {
                let back: f64 = (0..n).map(|k| qt(i, k) * r(k, j)).sum();
                assert!(
                    (back - t(i, j)).abs() < 1e-5,
                    "({i},{j}): {back} vs {}",
                    t(i, j)
                );
            }
        }
    }
}

#[test]
fn seeded_draws_are_deterministic() {
    for init in [
        scheme("kaiming_normal"),
        scheme("xavier_uniform"),
        scheme("orthogonal"),
        scheme("uniform:a=0,b=2"),
    ] {
        let a = filled(init, &[16, 8, 3], 42);
        assert_eq!(a, filled(init, &[16, 8, 3], 42), "{init}");
        assert_ne!(a, filled(init, &[16, 8, 3], 43), "{init}");
        let mut other = vec![0.0; a.len()];
        init.fill_shaped(&mut other, &[16, 8, 3], 42, 1).unwrap();
        assert_ne!(a, other, "{init}: stream ignored");
    }
}

#[test]
fn shape_errors() {
    let mut v = vec![0.0f32; 6];
    for init in [
        scheme("kaiming_uniform"),
        scheme("xavier_normal"),
        scheme("orthogonal"),
    ] {
        assert!(init.needs_shape());
        let err = init.fill_shaped(&mut v, &[6], 0, 0).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{init}: {err}");
        assert!(init.try_fill(&mut v, 0, 0).is_err());
        // fill() has no error to return, so it poisons the buffer.
        init.fill(&mut v, 0, 0);
        assert!(v.iter().all(|x| x.is_nan()), "{init}");
        let err = init.fill_shaped(&mut v, &[4, 2], 0, 0).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{init}: {err}");
    }
    assert!(!Init::Uniform { bound: 1.0 }.needs_shape());
    // An empty tensor is left alone, as PyTorch only warns.
    assert!(Init::Orthogonal { gain: 1.0 }
        .fill_shaped(&mut [], &[0, 4], 0, 0)
        .is_ok());
    assert!(scheme("kaiming_uniform")
        .fill_shaped(&mut [], &[4, 0], 0, 0)
        .is_ok());
    // Directly built invalid ranges are refused like PyTorch's uniform_ / normal_.
    assert!(Init::UniformRange {
        low: 1.0,
        high: 0.0
    }
    .try_fill(&mut v, 0, 0)
    .is_err());
    assert!(Init::Gaussian {
        mean: 0.0,
        std: -1.0
    }
    .try_fill(&mut v, 0, 0)
    .is_err());
    assert!(Init::Xavier {
        distribution: Distribution::Normal,
        gain: f32::NAN
    }
    .fill_shaped(&mut v, &[2, 3], 0, 0)
    .is_err());
}

#[test]
fn running_stats_unchanged() {
    let mut v = vec![7.0f32; 6];
    Init::RunningStats.fill(&mut v, 0, 0);
    assert_eq!(v, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
}

#[test]
fn parses_pytorch_names() {
    use Distribution::{Normal, Uniform};
    let kaiming = |distribution, mode, nonlinearity| Init::Kaiming {
        distribution,
        mode,
        nonlinearity,
    };
    let leaky = |negative_slope| Nonlinearity::LeakyRelu { negative_slope };
    let cases = [
        (
            "kaiming_uniform",
            kaiming(Uniform, FanMode::FanIn, leaky(0.0)),
        ),
        (
            "kaiming_normal:mode=fan_out,nonlinearity=relu",
            kaiming(Normal, FanMode::FanOut, Nonlinearity::Relu),
        ),
        (
            "kaiming_uniform:a=0.2",
            kaiming(Uniform, FanMode::FanIn, leaky(0.2)),
        ),
        (
            "kaiming_uniform:nonlinearity=leaky_relu(0.2)",
            kaiming(Uniform, FanMode::FanIn, leaky(0.2)),
        ),
        (
            "kaiming_normal:nonlinearity=leaky_relu,a=0.1",
            kaiming(Normal, FanMode::FanIn, leaky(0.1)),
        ),
        (
            "kaiming_normal:nonlinearity=conv2d",
            kaiming(Normal, FanMode::FanIn, Nonlinearity::Linear),
        ),
        (
            "xavier_uniform:gain=1.0",
            Init::Xavier {
                distribution: Uniform,
                gain: 1.0,
            },
        ),
        (
            " xavier_normal : gain = 2 ",
            Init::Xavier {
                distribution: Normal,
                gain: 2.0,
            },
        ),
        ("orthogonal", Init::Orthogonal { gain: 1.0 }),
        ("orthogonal:gain=1.5", Init::Orthogonal { gain: 1.5 }),
        ("normal:std=0.02", Init::Normal { std: 0.02 }),
        ("normal", Init::Normal { std: 1.0 }),
        (
            "normal:mean=1,std=0.5",
            Init::Gaussian {
                mean: 1.0,
                std: 0.5,
            },
        ),
        ("uniform:a=-0.1,b=0.1", Init::Uniform { bound: 0.1 }),
        (
            "uniform",
            Init::UniformRange {
                low: 0.0,
                high: 1.0,
            },
        ),
        (
            "uniform:b=2,a=0.5",
            Init::UniformRange {
                low: 0.5,
                high: 2.0,
            },
        ),
        ("zeros", Init::Constant(0.0)),
        ("ones", Init::Constant(1.0)),
        ("constant:value=0.5", Init::Constant(0.5)),
    ];
    for (text, want) in cases {
        assert_eq!(parse_init(text).unwrap(), InitScheme::Use(want), "{text}");
    }
    assert_eq!(parse_init("default").unwrap(), InitScheme::Default);
    assert_eq!(
        "kaiming_normal".parse::<InitScheme>().unwrap(),
        parse_init("kaiming_normal").unwrap()
    );
    let default = Init::Uniform { bound: 0.125 };
    assert_eq!(InitScheme::Default.or_layer_default(default), default);
    assert_eq!(
        InitScheme::Use(Init::Constant(0.0)).or_layer_default(default),
        Init::Constant(0.0)
    );
}

#[test]
fn display_round_trips_through_parse() {
    let texts = [
        "default",
        "kaiming_uniform",
        "kaiming_normal:mode=fan_out,nonlinearity=relu",
        "kaiming_uniform:a=0.2",
        "kaiming_uniform:nonlinearity=selu",
        "xavier_uniform:gain=1.0",
        "xavier_normal:gain=0.3",
        "orthogonal",
        "normal:std=0.02",
        "normal:mean=-0.25,std=0.1",
        "uniform:a=-0.1,b=0.1",
        "uniform:a=0,b=0.7",
        "zeros",
        "ones",
        "constant:value=-1e-3",
    ];
    for text in texts {
        let parsed = parse_init(text).unwrap();
        let shown = parsed.to_string();
        assert_eq!(parse_init(&shown).unwrap(), parsed, "{text} -> {shown}");
    }
    assert_eq!(
        scheme("kaiming_normal:mode=fan_out,nonlinearity=relu").to_string(),
        "kaiming_normal:mode=fan_out,nonlinearity=relu"
    );
    assert_eq!(
        scheme("kaiming_uniform:a=0.2").to_string(),
        "kaiming_uniform:mode=fan_in,nonlinearity=leaky_relu(0.2)"
    );
    assert_eq!(
        scheme("uniform:a=-0.1,b=0.1").to_string(),
        "uniform:a=-0.1,b=0.1"
    );
    assert_eq!(
        Init::Uniform { bound: 1.0 / 28.0 }.to_string(),
        "uniform:a=-0.035714287,b=0.035714287"
    );
}

#[test]
fn parse_errors_name_the_culprit() {
    let cases = [
        ("xavier", "xavier"),
        ("", "unknown init"),
        ("kaiming_uniform:mode=fan_mid", "mode=fan_mid"),
        ("kaiming_normal:nonlinearity=swish", "nonlinearity=swish"),
        ("kaiming_normal:nonlinearity=leaky_relu(x)", "leaky_relu(x)"),
        ("kaiming_uniform:a=0.1,nonlinearity=relu", "a=0.1"),
        (
            "kaiming_uniform:a=0.1,nonlinearity=leaky_relu(0.2)",
            "give it once",
        ),
        ("xavier_uniform:gian=1", "gian"),
        ("normal:std=abc", "std=abc"),
        ("normal:std=-1", "std=-1"),
        ("normal:std=inf", "std=inf"),
        ("normal:std", "`std`"),
        ("normal:", "``"),
        ("normal:std=1,std=2", "`std` is given twice"),
        ("uniform:a=1,b=0", "a <= b"),
        ("constant", "value"),
        ("zeros:value=1", "`value`"),
        ("default:gain=2", "`gain`"),
        ("orthogonal:gain=nan", "gain=nan"),
    ];
    for (text, needle) in cases {
        let err = parse_init(text).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{text}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{text}: `{msg}` lacks `{needle}`");
    }
    let msg = parse_init("xavier_uniform:gian=1").unwrap_err().to_string();
    assert!(msg.contains("accepted keys: gain"), "{msg}");
}
