"""Conv-model extension of harness.py: kiln CPU vs PyTorch for conv/pool/batchnorm2d/flatten.
Usage: [KILN_BACKEND=gpu] [REF64=1] python cnn.py [substring filters]"""
import os, sys, json, subprocess, tempfile
import harness
from harness import *
O = torch.optim
kw = dict(foreach=False)


class Seq(nn.Sequential):
    """nn.Sequential that reshapes the harness's [N,784] rows to [N,1,28,28]; names unchanged."""
    def forward(self, x):
        return super().forward(x.reshape(-1, 1, 28, 28))


class Residual(nn.Module):
    """kiln's residual(body..., shortcut=(...)): body(x) + shortcut(x), names body.j / shortcut.j."""
    def __init__(self, body, shortcut):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.shortcut = nn.Sequential(*shortcut) if shortcut else None

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


def parse_residual(inner):
    body, shortcut = [], []
    for part in split_top(inner):
        if part.replace(' ', '').startswith('shortcut='):
            shortcut = parse_spec(part.split('=', 1)[1].strip()[1:-1])
        elif part:
            body.append(part)
    return Residual(parse_spec(','.join(body)), shortcut)


def parse_spec(spec):
    """kiln layer list -> list of torch modules (dropout -> Dropout(p))."""
    mods = []
    for part in split_top(spec):
        name, _, args = part.partition('(')
        if name.strip() == 'residual':
            mods.append(parse_residual(args[:-1]))
            continue
        args = args[:-1] if args.endswith(')') else args
        a = eval(f"(lambda *a, **k: (a, k))({args})", {'False': False, 'True': True, 'false': False, 'true': True})
        pa, ka = a
        M = {'conv2d': nn.Conv2d, 'linear': nn.Linear, 'maxpool2d': nn.MaxPool2d, 'avgpool2d': nn.AvgPool2d,
             'batchnorm2d': nn.BatchNorm2d, 'batchnorm1d': nn.BatchNorm1d, 'relu': nn.ReLU, 'flatten': nn.Flatten,
             'dropout': nn.Dropout, 'tanh': nn.Tanh, 'layernorm': nn.LayerNorm,
             'adaptiveavgpool2d': nn.AdaptiveAvgPool2d, 'adaptivemaxpool2d': nn.AdaptiveMaxPool2d,
             'silu': nn.SiLU, 'elu': nn.ELU, 'selu': nn.SELU, 'gelu': nn.GELU,
             'relu6': nn.ReLU6, 'hardtanh': nn.Hardtanh, 'hardsigmoid': nn.Hardsigmoid,
             'hardswish': nn.Hardswish, 'softplus': nn.Softplus, 'mish': nn.Mish,
             'groupnorm': nn.GroupNorm, 'instancenorm2d': nn.InstanceNorm2d,
             'dropout2d': nn.Dropout2d, 'logsoftmax': nn.LogSoftmax, 'prelu': nn.PReLU}[name]
        mods.append(M(*pa, **ka))
    return mods


def split_top(spec):
    out, depth, cur = [], 0, ''
    for ch in spec:
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur.strip()); cur = ''
        else:
            cur += ch
    out.append(cur.strip())
    return out


def use(spec, tag):
    init = os.path.join(harness.WORK, f'init_{tag}.safetensors')
    harness.set_model(spec, lambda: Seq(*parse_spec(spec)), init)


def buffers(kp, tsd):
    """max |kiln - torch| over running_mean/var, relative to max |torch - init| (relU of the buffers), and n_b_t."""
    init = load_file(harness.INIT)
    out = {}
    for k, t in tsd.items():
        if 'running' in k:
            if k not in kp:
                out[k] = 'MISSING'; continue
            d = (kp[k].double() - t.double()).abs().max().item()
            u = (t.double() - init[k].double()).abs().max().item()
            out[k] = (d, d / max(u, 1e-30))
        elif 'num_batches' in k:
            out[k] = (int(kp[k].item()) if k in kp else 'MISSING', int(t.item()))
    return out


def bn_case(name, flags, make_opt, steps_list=(1, 3, 10)):
    """case() plus buffers at each step count and the key sets."""
    res = case(name, flags, make_opt, steps_list=steps_list)
    snaps, losses, _, _ = run_torch(make_opt, max(steps_list), snapshots=steps_list)
    for s in steps_list:
        kp, _, _, _ = run_kiln(flags, s)
        b = buffers(kp, snaps[s])
        worst = max((v[0] for k, v in b.items() if 'running' in k and v != 'MISSING'), default=0)
        worstu = max((v[1] for k, v in b.items() if 'running' in k and v != 'MISSING'), default=0)
        nbt = {k: v for k, v in b.items() if 'num_batches' in k}
        print(f"    buffers s{s}: max abs {worst:.2e} rel-to-change {worstu:.1e}  nbt(kiln,torch) {nbt}")
    kk = set(k for k in load_file(f"{LAST['dir']}/ck.safetensors") if not k.startswith('optim.'))
    tk = set(snaps['final'].keys())
    print(f"    keys only in kiln: {sorted(kk - tk)}  only in torch: {sorted(tk - kk)}")
    return res


SGD = (['--optimizer', 'sgd', '--lr', '0.1'], lambda m: O.SGD(m.parameters(), lr=0.1, **kw))
ADAMW = (['--optimizer', 'adamw', '--lr', '1e-3'], lambda m: O.AdamW(m.parameters(), lr=1e-3, **kw))

CASES = [
    ('c1', "conv2d(1,8,3,padding=1),relu,maxpool2d(2),flatten,linear(1568,10)", False),
    ('c2a', "conv2d(1,8,3,stride=2),relu,flatten,linear(1352,10)", False),
    ('c2b', "conv2d(1,6,5),relu,maxpool2d(2),flatten,linear(864,10)", False),
    ('c2c', "conv2d(1,6,5,padding=2,bias=False),relu,maxpool2d(2),flatten,linear(1176,10)", False),
    ('c2d', "conv2d(1,4,(3,5),stride=(2,1),padding=(1,2)),tanh,flatten,linear(1568,10)", False),
    ('c3', "conv2d(1,8,3,padding=1),batchnorm2d(8),relu,maxpool2d(2),flatten,linear(1568,10)", True),
    ('c3b', "conv2d(1,8,3,padding=1,bias=False),batchnorm2d(8,eps=1e-3,momentum=0.3),relu,flatten,linear(6272,10)", True),
    ('c4a', "conv2d(1,8,3,padding=1),relu,avgpool2d(2),flatten,linear(1568,10)", False),
    ('c4b', "conv2d(1,8,3,padding=1),relu,maxpool2d(3,stride=2),flatten,linear(1352,10)", False),
    ('c4c', "conv2d(1,8,3,padding=1),relu,avgpool2d(3,stride=2),flatten,linear(1352,10)", False),
    ('c4d', "conv2d(1,8,3),relu,maxpool2d(3,stride=1),avgpool2d(2),flatten,linear(1152,10)", False),
    ('c5', "conv2d(1,8,3,padding=1),batchnorm2d(8),relu,maxpool2d(2),conv2d(8,16,3,padding=1),batchnorm2d(16),relu,maxpool2d(2),flatten,linear(784,32),relu,linear(32,10)", True),
    ('c5d', "conv2d(1,8,3,padding=1),batchnorm2d(8),relu,maxpool2d(2),conv2d(8,16,3,padding=1),batchnorm2d(16),relu,maxpool2d(2),flatten,dropout(0.0),linear(784,32),relu,linear(32,10)", True),
    # Padded pooling (PyTorch's implicit padding; the average counts it, count_include_pad).
    ('c6a', "conv2d(1,8,3,padding=1),relu,maxpool2d(3,stride=2,padding=1),flatten,linear(1568,10)", False),
    ('c6b', "conv2d(1,8,3,padding=1),relu,avgpool2d(3,stride=2,padding=1),flatten,linear(1568,10)", False),
    ('c6c', "conv2d(1,4,3),relu,maxpool2d((3,2),stride=(2,1),padding=(1,1)),flatten,linear(1404,10)", False),
    # Adaptive pooling (global and to 7x7 / 2x4) and the SiLU/ELU/SELU activations.
    ('c7a', "conv2d(1,8,3,padding=1),batchnorm2d(8),silu,adaptiveavgpool2d(1),flatten,linear(8,10)", True),
    ('c7b', "conv2d(1,8,3,padding=1),elu(alpha=0.5),adaptivemaxpool2d(7),flatten,linear(392,10)", False),
    ('c7c', "conv2d(1,8,3,padding=1),selu,adaptiveavgpool2d((2,4)),flatten,linear(64,10)", False),
    ('c7d', "conv2d(1,4,3,padding=1),relu,adaptivemaxpool2d(3),flatten,linear(36,10)", False),
    # Adaptive windows of two lengths (28 -> 5: 6,7,6,7,6; 28 -> 6; 14 -> 4 after a pool).
    ('c7e', "conv2d(1,4,3,padding=1),relu,adaptiveavgpool2d(5),flatten,linear(100,10)", False),
    ('c7f', "conv2d(1,4,3,padding=1),batchnorm2d(4),relu,adaptivemaxpool2d((5,6)),flatten,linear(120,10)", True),
    ('c7g', "conv2d(1,4,3,padding=1),relu,maxpool2d(2),adaptiveavgpool2d((4,6)),flatten,linear(96,10)", False),
    # ceil_mode (overhanging last windows) and count_include_pad=False.
    ('c8a', "conv2d(1,8,3),relu,maxpool2d(2,ceil_mode=True),flatten,linear(1352,10)", False),
    ('c8b', "conv2d(1,8,3),relu,avgpool2d(3,2,1,True,False),flatten,linear(1568,10)", False),
    ('c8c', "conv2d(1,8,3,padding=1),relu,avgpool2d(3,stride=2,ceil_mode=True),flatten,linear(1568,10)", False),
    # Dilated convolution (PyTorch's positions: stride, padding, dilation, groups, bias).
    ('d1', "conv2d(1,8,3,padding=2,dilation=2),relu,maxpool2d(2),flatten,linear(1568,10)", False),
    ('d2', "conv2d(1,4,(3,2),stride=2,padding=(2,1),dilation=(2,3)),batchnorm2d(4),relu,flatten,linear(784,10)", True),
    ('d2b', "conv2d(1,4,(3,2),stride=2,padding=(2,1),dilation=(2,3),bias=False),batchnorm2d(4),relu,flatten,linear(784,10)", True),
    ('d3', "conv2d(1,4,3,1,0,3,1,False),tanh,flatten,linear(1936,10)", False),
    # Grouped convolution: depthwise-separable (groups = channels, then a 1x1), and two
    # groups with a channel multiplier, stride and dilation before batch norm.
    ('g1', "conv2d(1,8,3,padding=1),relu,conv2d(8,8,3,padding=1,groups=8),relu,conv2d(8,16,1),relu,maxpool2d(2),flatten,linear(3136,10)", False),
    ('g2', "conv2d(1,4,3,padding=1,bias=False),batchnorm2d(4),relu,conv2d(4,8,3,stride=2,padding=2,dilation=2,groups=2,bias=False),batchnorm2d(8),relu,flatten,linear(1568,10)", True),
    # Residual blocks: identity and projection shortcuts, nested names (3.body.1.weight).
    ('r1', "conv2d(1,8,3,padding=1),relu,residual(conv2d(8,8,3,padding=1),relu,conv2d(8,8,3,padding=1)),relu,maxpool2d(2),flatten,linear(1568,10)", False),
    ('r2', "conv2d(1,8,3,padding=1,bias=False),batchnorm2d(8),relu,residual(conv2d(8,8,3,padding=1,bias=False),batchnorm2d(8),relu,conv2d(8,8,3,padding=1,bias=False),batchnorm2d(8)),relu,residual(conv2d(8,16,3,stride=2,padding=1,bias=False),batchnorm2d(16),relu,conv2d(16,16,3,padding=1,bias=False),batchnorm2d(16),shortcut=(conv2d(8,16,1,stride=2,bias=False),batchnorm2d(16))),relu,adaptiveavgpool2d(1),flatten,linear(16,10)", True),
    ('r3', "flatten,linear(784,64),relu,residual(linear(64,64),relu,linear(64,64)),layernorm(64),residual(linear(64,64),tanh,residual(linear(64,64),gelu),shortcut=(linear(64,64,bias=False))),linear(64,10)", False),
    # ReLU6/Hardswish in a MobileNet-style inverted residual (expand 1x1, depthwise 3x3,
    # project 1x1), and the other hard and soft activations in an MLP.
    ('a1', "conv2d(1,8,3,stride=2,padding=1,bias=False),batchnorm2d(8),hardswish,residual(conv2d(8,16,1,bias=False),batchnorm2d(16),relu6,conv2d(16,16,3,padding=1,groups=16,bias=False),batchnorm2d(16),relu6,conv2d(16,8,1,bias=False),batchnorm2d(8)),adaptiveavgpool2d(1),flatten,linear(8,10)", True),
    ('a2', "flatten,linear(784,64),softplus,linear(64,64),mish,linear(64,32),hardtanh(-0.5,0.5),linear(32,32),hardsigmoid,linear(32,32),softplus(beta=2,threshold=1),linear(32,10)", False),
    # A log-softmax output under cross-entropy: PyTorch's log_softmax + nll_loss.
    ('a3', "flatten,linear(784,64),relu,linear(64,10),logsoftmax(dim=1)", False),
    # PReLU: a slope per channel after a convolution, one slope for all features.
    ('a4', "conv2d(1,8,3,padding=1),prelu(8),maxpool2d(2),flatten,linear(1568,32),prelu,linear(32,10)", False),
    # Group norm (2 and 4 groups, eps), instance norm (plain and affine) and group norm on
    # [N, C] features (8 groups, and one group without affine).
    ('n1', "conv2d(1,8,3,padding=1),groupnorm(2,8),relu,maxpool2d(2),conv2d(8,16,3,padding=1),groupnorm(4,16,eps=1e-3),relu,flatten,linear(3136,10)", False),
    ('n2', "conv2d(1,8,3,padding=1),instancenorm2d(8),relu,conv2d(8,8,3,padding=1,bias=False),instancenorm2d(8,affine=True),relu,maxpool2d(2),flatten,linear(1568,10)", False),
    ('n3', "flatten,linear(784,64),groupnorm(8,64),relu,linear(64,64),groupnorm(1,64,affine=False),tanh,linear(64,10)", False),
]

if __name__ == '__main__':
    sel = sys.argv[1:]
    for tag, spec, bn in CASES:
        if sel and tag not in sel:
            continue
        use(spec, tag)
        print(f"== {tag}: {spec}", flush=True)
        for oname, (flags, mk) in (('sgd0.1', SGD), ('adamw1e-3', ADAMW)):
            try:
                (bn_case if bn else case)(f"{tag} {oname}", flags, mk)
            except Exception as e:
                print(tag, oname, 'ERROR', e, flush=True)
