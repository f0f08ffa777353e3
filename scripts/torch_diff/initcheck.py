"""kiln's default (and kaiming_normal fan_out) init for conv/BN vs PyTorch's formulas, from a 0-step checkpoint."""
import subprocess, math, os, sys
import torch
from safetensors.torch import load_file
KILN = os.environ.get('KILN', 'target/release/kiln'); W = os.environ.get('TORCHDIFF_DIR', '/tmp/torchdiff')
spec = "conv2d(1,64,5),batchnorm2d(64),relu,conv2d(64,64,3),flatten,linear(30976,10)"
for scheme in ('default', 'kaiming_normal', 'kaiming_uniform:mode=fan_out,nonlinearity=relu', 'xavier_uniform'):
    ck = f'{W}/runs/init_{scheme.split(":")[0]}.safetensors'
    cmd = [KILN, 'train', '--data', f'{W}/data', '--backend', 'cpu', '--model', spec, '--optimizer', 'sgd', '--lr', '1e-30',
           '--steps', '1', '--epochs', '1', '--batch-size', '32', '--save', ck, '--init-scheme', scheme]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: print(scheme, 'FAILED', r.stderr[-500:]); continue
    sd = load_file(ck)
    print('==', scheme)
    for k in ('0.weight', '0.bias', '1.weight', '1.bias', '3.weight', '3.bias', '5.weight', '5.bias'):
        t = sd[k].double()
        print(f"  {k:9s} {tuple(t.shape)} min {t.min():+.4f} max {t.max():+.4f} mean {t.mean():+.5f} std {t.std():.5f}")
print("expected default: conv/linear weight & bias U(+-1/sqrt(fan_in)): 0: 0.2 (std .1155), 3: 1/24=.04167 (std .02406), 5: 1/176=.005682; BN weight 1 bias 0")
print("kaiming_normal (fan_in, leaky_relu a=0 -> gain sqrt2): std 0: .2828, 3: .05893, 5: .008035; bias default U(+-1/sqrt(fan_in))")
print("kaiming_uniform fan_out relu: bound sqrt(6/fan_out): 0: sqrt(6/1600)=.06124, 3: sqrt(6/576)=.1021, 5: sqrt(6/10)=.7746")
print("xavier_uniform: bound sqrt(6/(fan_in+fan_out)): 0: sqrt(6/1625)=.06077, 3: sqrt(6/1152)=.07217, 5: sqrt(6/30986)=.01392")
