//! The element-wise activation functions ops carry, with PyTorch's definitions and the
//! codes the WGSL kernels switch on.

/// Element-wise activation functions, with PyTorch's definitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// x for x > 0, slope·x otherwise.
    LeakyRelu(f32),
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh(x)
    Tanh,
    /// x·Φ(x), the exact (erf) form that is `nn.GELU()`'s default.
    Gelu,
    /// x·σ(x) (`nn.SiLU`, also called swish).
    Silu,
    /// x for x > 0, α·(eˣ − 1) otherwise (`nn.ELU(alpha)`).
    Elu(f32),
    /// λ·x for x > 0, λ·α·(eˣ − 1) otherwise, with `nn.SELU`'s fixed α and λ.
    Selu,
    /// min(max(x, 0), 6) (`nn.ReLU6`).
    Relu6,
    /// min(max(x, min_val), max_val) (`nn.Hardtanh(min_val, max_val)`).
    Hardtanh(f32, f32),
    /// min(max(x + 3, 0), 6) / 6 (`nn.Hardsigmoid`).
    Hardsigmoid,
    /// x·min(max(x + 3, 0), 6) / 6 (`nn.Hardswish`).
    Hardswish,
    /// log(1 + e^(β·x)) / β, or x where β·x > threshold (`nn.Softplus(beta, threshold)`);
    /// a threshold past 88 acts at 88, where e^(β·x) would overflow f32 (PyTorch's f32
    /// gives ∞ there; the formula's value is x).
    Softplus(f32, f32),
    /// x·tanh(softplus(x)) (`nn.Mish`).
    Mish,
}

/// `nn.SELU`'s α (Klambauer et al., 2017), as PyTorch writes it.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// `nn.SELU`'s λ (the `scale`), as PyTorch writes it.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

impl Activation {
    /// The numeric code the WGSL kernels switch on (an `override` constant).
    pub fn code(self) -> u32 {
        match self {
            Activation::Relu => 0,
            Activation::LeakyRelu(_) => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
            Activation::Gelu => 4,
            Activation::Silu => 5,
            Activation::Elu(_) => 6,
            Activation::Selu => 7,
            Activation::Relu6 => 8,
            Activation::Hardtanh(..) => 9,
            Activation::Hardsigmoid => 10,
            Activation::Hardswish => 11,
            Activation::Softplus(..) => 12,
            Activation::Mish => 13,
        }
    }

    /// The two parameters the kernels take: leaky relu's slope or ELU's α (and 0),
    /// hardtanh's `[min_val, max_val]`, softplus's `[beta, threshold]`; zeros for
    /// activations that have none.
    pub fn params(self) -> [f32; 2] {
        match self {
            Activation::LeakyRelu(s) | Activation::Elu(s) => [s, 0.0],
            Activation::Hardtanh(a, b) | Activation::Softplus(a, b) => [a, b],
            _ => [0.0; 2],
        }
    }

    /// Whether the derivative is a function of the output, so that the gradient can read
    /// `y = f(x)` instead of `x` (relu: y > 0; sigmoid: y·(1 − y); tanh: 1 − y²), as
    /// PyTorch's backward does for these three. The others read their input.
    pub fn grad_from_output(self) -> bool {
        matches!(
            self,
            Activation::Relu | Activation::Sigmoid | Activation::Tanh
        )
    }

    /// The lower-case name used in model specs.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Elu(_) => "elu",
            Activation::Selu => "selu",
            Activation::Relu6 => "relu6",
            Activation::Hardtanh(..) => "hardtanh",
            Activation::Hardsigmoid => "hardsigmoid",
            Activation::Hardswish => "hardswish",
            Activation::Softplus(..) => "softplus",
            Activation::Mish => "mish",
        }
    }
}
