"""Max-pool tie-breaking: conv weight = one-hot centre (no bias) so the conv output equals the image
exactly; equal pixels in a pool window are exact ties whose choice changes the conv weight gradient
(neighbourhoods differ). PyTorch routes to the first max in the window (row-major)."""
import harness, cnn
from cnn import *
for tag, spec in (('t1', "conv2d(1,1,3,padding=1,bias=False),maxpool2d(2),flatten,linear(196,10)"),
                  ('t2', "conv2d(1,1,3,padding=1,bias=False),maxpool2d(3,stride=2),flatten,linear(169,10)"),
                  ('t3', "conv2d(1,2,3,padding=1,bias=False),relu,maxpool2d(2),conv2d(2,2,3,padding=1,bias=False),maxpool2d(2),flatten,linear(98,10)")):
    use(spec, tag)
    sd = load_file(harness.INIT)
    for k in sd:
        if k.endswith('weight') and sd[k].dim() == 4:
            w = torch.zeros_like(sd[k]); co, ci = w.shape[:2]
            for o in range(co): w[o, o % ci, 1, 1] = 1.0
            sd[k] = w
    save_file(sd, harness.INIT)
    harness.INIT_SD = None
    print('==', tag, spec)
    case(f"{tag} sgd0.1", *SGD, steps_list=(1, 3))
    # count exact ties in the first batch window
    x = XTR[:32].reshape(-1, 1, 28, 28)
    u = F.unfold(x, 2, stride=2) if tag != 't2' else F.unfold(x, 3, stride=2)
    mx = u.max(1, keepdim=True).values
    print('   windows with a tied nonzero max in batch 0:', (((u == mx).sum(1) > 1) & (mx[:, 0] > 0)).sum().item())
