"""kiln (CPU backend) vs PyTorch: same initial weights (--init), same batches (--no-shuffle),
compare parameters after N steps, per-step losses and learning rates from kiln's --log."""
import json, math, os, struct, subprocess, tempfile
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import save_file, load_file

torch.set_num_threads(1)
# Where the kiln binary and the scratch files are: KILN and TORCHDIFF_DIR override.
KILN = os.environ.get('KILN', 'target/release/kiln')
WORK = os.environ.get('TORCHDIFF_DIR', '/tmp/torchdiff')
DATA = os.path.join(WORK, 'data')
MODEL = "linear(784,32),relu,linear(32,10)"
INIT = os.path.join(WORK, 'init.safetensors')


def read_idx(name):
    b = open(os.path.join(DATA, name), 'rb').read()
    magic = struct.unpack('>I', b[:4])[0]
    if magic == 0x803:
        n = struct.unpack('>I', b[4:8])[0]
        return np.frombuffer(b, np.uint8, offset=16).reshape(n, 784)
    return np.frombuffer(b, np.uint8, offset=8)


XTR = torch.tensor(read_idx('train-images-idx3-ubyte').copy()).float() / 255.0  # f32 p/255
YTR = torch.tensor(read_idx('train-labels-idx1-ubyte').astype(np.int64))


DTYPE = torch.float32


def build_default():
    return nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


BUILD = build_default


def set_model(spec, build, init_path):
    global MODEL, BUILD, INIT, INIT_SD
    MODEL, BUILD, INIT, INIT_SD = spec, build, init_path, None
    if not os.path.exists(INIT):
        torch.manual_seed(99)
        m0 = build()
        for p in m0.parameters():
            if p.dim() == 1:
                with torch.no_grad():
                    p.add_(0.1 * torch.randn_like(p))  # make norm weights/biases non-trivial
        save_file({k: v.contiguous() for k, v in m0.state_dict().items()}, INIT)


def make_model():
    m = BUILD()
    m.load_state_dict(load_file(INIT))
    return m.to(DTYPE)


if not os.path.exists(INIT):
    torch.manual_seed(1234)
    m0 = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    save_file({k: v.contiguous() for k, v in m0.state_dict().items()}, INIT)


def run_kiln(flags, steps, batch=32, limit=None, epochs=None):
    n = limit or XTR.shape[0]
    per_epoch = math.ceil(n / batch)
    if epochs is None:
        epochs = math.ceil(steps / per_epoch)
    d = tempfile.mkdtemp(dir=os.path.join(WORK, 'runs'))
    cmd = [KILN, 'train', '--data', DATA, '--backend', os.environ.get('KILN_BACKEND', 'cpu'), '--model', MODEL,
           '--batch-size', str(batch), '--no-shuffle', '--epochs', str(epochs),
           '--init', INIT, '--save', f'{d}/ck.safetensors', '--log', f'{d}/log.jsonl']
    if steps is not None:
        cmd += ['--steps', str(steps)]
    if limit:
        cmd += ['--limit', str(limit)]
    cmd += flags
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(' '.join(cmd) + '\n' + r.stdout + r.stderr)
    params = {k: v for k, v in load_file(f'{d}/ck.safetensors').items() if not k.startswith('optim.')}
    LAST['dir'] = d
    log = [json.loads(l) for l in open(f'{d}/log.jsonl')]
    steps_log = [e for e in log if 'step' in e]
    epochs_log = [e for e in log if 'train_loss' in e]
    return params, steps_log, epochs_log, cmd


def run_torch(make_opt, steps, batch=32, limit=None, loss='ce', label_smoothing=0.0,
              clip_value=None, clip_norm=None, l1=0.0, l2=0.0, penalised=None,
              make_sched=None, per_batch=False, plateau_metric=None, epochs=None,
              snapshots=()):
    """Returns (params_at[step], losses, lrs, grad_norms)."""
    m = make_model()
    opt = make_opt(m)
    sched = make_sched(opt) if make_sched else None
    n = limit or XTR.shape[0]
    X, Y = XTR[:n].to(DTYPE), YTR[:n]
    losses, lrs, gnorms, snaps = [], [], [], {}
    step = 0
    epoch = 0
    names = [k for k, _ in m.named_parameters()]
    while True:
        if epochs is not None and epoch >= epochs:
            break
        if steps is not None and step >= steps:
            break
        ep_losses = []
        for i in range(0, n, batch):
            xb, yb = X[i:i + batch], Y[i:i + batch]
            out = m(xb)
            if loss == 'ce':
                data_loss = F.cross_entropy(out, yb, label_smoothing=label_smoothing)
            else:
                oh = F.one_hot(yb, 10).to(DTYPE)
                data_loss = loss(out, oh)
            total = data_loss
            if l1 or l2:
                for name, p in m.named_parameters():
                    if penalised is None or penalised(name):
                        if l2:
                            total = total + l2 * (p * p).sum()
                        if l1:
                            total = total + l1 * p.abs().sum()
            opt.zero_grad()
            total.backward()
            if clip_value is not None:
                torch.nn.utils.clip_grad_value_(m.parameters(), clip_value)
            if clip_norm is not None:
                gnorms.append(float(torch.nn.utils.clip_grad_norm_(m.parameters(), clip_norm)))
            lrs.append(opt.param_groups[0]['lr'])
            opt.step()
            losses.append(data_loss.item())
            ep_losses.append(data_loss.item() * xb.shape[0])
            step += 1
            if step in snapshots:
                snaps[step] = {k: v.detach().clone() for k, v in m.state_dict().items()}
            if sched is not None and per_batch:
                sched.step()
            if steps is not None and step >= steps:
                break
        else:
            epoch += 1
            if sched is not None and not per_batch:
                if plateau_metric is not None:
                    sched.step(plateau_metric(epoch, sum(ep_losses) / n))
                else:
                    sched.step()
            continue
        break
    snaps['final'] = {k: v.detach().clone() for k, v in m.state_dict().items()}
    return snaps, losses, lrs, gnorms


INIT_SD = None
LAST = {}


def diff(kp, tp):
    global INIT_SD
    if INIT_SD is None:
        INIT_SD = load_file(INIT)
    mabs, mrel_upd, mrel_p = 0.0, 0.0, 0.0
    upd_max = 0.0
    for k, t in tp.items():
        if 'running' in k or 'num_batches' in k:
            continue
        a = kp[k].double(); b = t.double()
        d = (a - b).abs().max().item()
        mabs = max(mabs, d)
        upd_max = max(upd_max, (b - INIT_SD[k].double()).abs().max().item())
        mrel_p = max(mrel_p, d / max(b.abs().max().item(), 1e-30))
    return dict(max_abs=mabs, rel_to_param=mrel_p, rel_to_update=mabs / max(upd_max, 1e-30))


def rel_seq(a, b):
    n = min(len(a), len(b))
    if n == 0:
        return float('nan')
    return max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(a[:n], b[:n]))


def case(name, flags, make_opt, steps_list=(1, 3, 10), batch=32, **tk):
    res = {}
    snaps, losses, lrs, gn = run_torch(make_opt, max(steps_list), batch=batch,
                                       snapshots=steps_list, **tk)
    worst = None
    for s in steps_list:
        kp, klog, _, cmd = run_kiln(flags, s, batch=batch, limit=tk.get('limit'))
        d = diff(kp, snaps[s])
        res[s] = d
        if s == max(steps_list):
            kl = [e['loss'] for e in klog]
            klr = [e['lr'] for e in klog]
            kgn = [e['grad_norm'] for e in klog if 'grad_norm' in e]
            lossrel = rel_seq(kl, losses)
            lrrel = rel_seq(klr, lrs)
            gnrel = rel_seq(kgn, gn) if gn else None
            lastcmd = cmd
    line = f"{name:38s} " + " ".join(
        f"s{s}: abs {d['max_abs']:.2e} relP {d['rel_to_param']:.1e} relU {d['rel_to_update']:.1e} |"
        for s, d in res.items())
    line += f" loss rel {lossrel:.1e} lr rel {lrrel:.1e}"
    if REF64:
        global DTYPE
        DTYPE = torch.float64
        s64, l64, _, _ = run_torch(make_opt, max(steps_list), batch=batch, snapshots=steps_list, **tk)
        DTYPE = torch.float32
        s = max(steps_list)
        kp, _, _, _ = run_kiln(flags, s, batch=batch, limit=tk.get('limit'))
        dk = diff(kp, s64[s]); dt = diff(snaps[s], s64[s])
        line += f" || vs f64@{s}: kiln relU {dk['rel_to_update']:.1e}, torch32 relU {dt['rel_to_update']:.1e}"
    if gnrel is not None:
        line += f" gnorm rel {gnrel:.1e}"
    print(line, flush=True)
    return res, lossrel, lrrel, lastcmd


os.makedirs(os.path.join(WORK, 'runs'), exist_ok=True)
REF64 = os.environ.get('REF64') == '1'
