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

/// The convolutional layers, the `cnn` preset and grouped convolution.
mod cnn;
/// Group and instance norm: arguments, names, and values against group norm written out.
mod group_norm;
/// Activations, PReLU, softmax outputs and Dropout2d: arguments, names and values.
mod layers;
/// Residual blocks and the `resnet` preset: names, shapes, values, dropout streams, errors.
mod residual;
