"""Evaluation after training: kiln's per-epoch test_loss/test_accuracy (log) and `kiln eval` vs PyTorch
model.eval() (BN on running stats) on the 64 test images, for torch-trained and kiln-trained weights."""
import sys, re, harness, cnn
from cnn import *
def read_test():
    b = open(os.path.join(DATA, 't10k-images-idx3-ubyte'), 'rb').read()
    x = torch.tensor(np.frombuffer(b, np.uint8, offset=16).reshape(-1, 784).copy()).float() / 255
    y = torch.tensor(np.frombuffer(open(os.path.join(DATA, 't10k-labels-idx1-ubyte'), 'rb').read(), np.uint8, offset=8).astype(np.int64))
    return x, y
XT, YT = read_test()
def teval(sd, spec, dt=torch.float32):
    m = Seq(*parse_spec(spec)); m.load_state_dict(sd); m = m.to(dt).eval()
    with torch.no_grad():
        out = m(XT.to(dt))
    return F.cross_entropy(out, YT).item(), (out.argmax(1) == YT).float().mean().item()
for tag in sys.argv[1:] or ['c3', 'c5']:
    spec = dict((t, s) for t, s, _ in CASES)[tag]; use(spec, tag)
    for oname, (flags, mk) in (('sgd', SGD), ('adamw', ADAMW)):
        snaps, losses, _, _ = run_torch(mk, 16, snapshots=(8, 16))
        kp, klog, kep, cmd = run_kiln(flags, None, epochs=2)
        ck = f"{LAST['dir']}/ck.safetensors"
        ksd = {k: v for k, v in load_file(ck).items() if not k.startswith('optim.')}
        for e, s in ((1, 8), (2, 16)):
            tl, ta = teval(snaps[s], spec)
            ke = kep[e - 1]
            trl = sum(losses[s - 8:s]) / 8
            print(f"{tag} {oname} epoch {e}: kiln test_loss {ke['test_loss']:.6f} acc {ke['test_accuracy']:.4f} | torch {tl:.6f} acc {ta:.4f} | rel {abs(ke['test_loss']-tl)/tl:.1e}"
                  f" | train_loss kiln {ke['train_loss']:.6f} torch {trl:.6f} rel {abs(ke['train_loss']-trl)/trl:.1e}")
        kl, ka = teval(ksd, spec); kl64, _ = teval(ksd, spec, torch.float64)
        for bs in (256, 7, 1):
            r = subprocess.run([KILN, 'eval', '--checkpoint', ck, '--data', DATA, '--backend', 'cpu', '--batch-size', str(bs)], capture_output=True, text=True)
            m = re.search(r'loss ([0-9.]+), accuracy ([0-9.]+)%', r.stdout)
            print(f"   kiln eval bs{bs}: {m.group(0) if m else r.stdout + r.stderr}  | torch.eval on kiln's weights: loss {kl:.6f} (f64 {kl64:.6f}) acc {100*ka:.2f}%")
        print(f"   kiln epoch-2 test_loss on its own weights vs torch eval of same weights: rel {abs(kep[1]['test_loss']-kl64)/kl64:.1e}")
