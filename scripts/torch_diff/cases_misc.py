from harness import *
import harness, sys
O = torch.optim
kw = dict(foreach=False)
sgd = lambda lr=0.1, **k: (lambda m: O.SGD(m.parameters(), lr=lr, **kw, **k))
C = []
# 4. clipping
C.append(("clip-norm 0.5 sgd", ['--optimizer','sgd','--lr','0.1','--clip-norm','0.5'], sgd(), dict(clip_norm=0.5)))
C.append(("clip-norm 100 (inactive) sgd", ['--optimizer','sgd','--lr','0.1','--clip-norm','100'], sgd(), dict(clip_norm=100.0)))
C.append(("clip-value 0.01 sgd", ['--optimizer','sgd','--lr','0.1','--clip-value','0.01'], sgd(), dict(clip_value=0.01)))
C.append(("clip-value 0.01 + clip-norm 0.2 sgd", ['--optimizer','sgd','--lr','0.1','--clip-value','0.01','--clip-norm','0.2'], sgd(), dict(clip_value=0.01, clip_norm=0.2)))
C.append(("clip-norm 0.5 adam", ['--optimizer','adam','--lr','1e-3','--betas','0.9,0.99','--clip-norm','0.5'],
          lambda m: O.Adam(m.parameters(), lr=1e-3, betas=(0.9,0.99), **kw), dict(clip_norm=0.5)))
# 5. penalties, label smoothing, losses
C.append(("l2 1e-2 (all params)", ['--optimizer','sgd','--lr','0.1','--l2','1e-2'], sgd(), dict(l2=1e-2)))
C.append(("l1 1e-3 (all params)", ['--optimizer','sgd','--lr','0.1','--l1','1e-3'], sgd(), dict(l1=1e-3)))
C.append(("l2 1e-2 + --no-decay bias", ['--optimizer','sgd','--lr','0.1','--l2','1e-2','--no-decay','bias'], sgd(), dict(l2=1e-2, penalised=lambda n: n.endswith('weight'))))
C.append(("label-smoothing 0.1", ['--optimizer','sgd','--lr','0.1','--label-smoothing','0.1'], sgd(), dict(label_smoothing=0.1)))
C.append(("loss mse", ['--optimizer','sgd','--lr','0.5','--loss','mse'], sgd(0.5), dict(loss=F.mse_loss)))
C.append(("loss bce_with_logits", ['--optimizer','sgd','--lr','0.5','--loss','bce_with_logits'], sgd(0.5), dict(loss=F.binary_cross_entropy_with_logits)))
C.append(("loss l1", ['--optimizer','sgd','--lr','0.5','--loss','l1'], sgd(0.5), dict(loss=F.l1_loss)))
C.append(("loss smooth_l1 default", ['--optimizer','sgd','--lr','0.5','--loss','smooth_l1'], sgd(0.5), dict(loss=F.smooth_l1_loss)))
C.append(("loss smooth_l1 beta=0.3", ['--optimizer','sgd','--lr','0.5','--loss','smooth_l1:beta=0.3'], sgd(0.5), dict(loss=lambda a,b: F.smooth_l1_loss(a,b,beta=0.3))))
C.append(("loss huber delta=0.3", ['--optimizer','sgd','--lr','0.5','--loss','huber:delta=0.3'], sgd(0.5), dict(loss=lambda a,b: F.huber_loss(a,b,delta=0.3))))
C.append(("loss huber delta=2", ['--optimizer','sgd','--lr','0.5','--loss','huber:delta=2'], sgd(0.5), dict(loss=lambda a,b: F.huber_loss(a,b,delta=2.0))))
# 7. no-decay
def groups(m, wd, pred, opt=O.AdamW, **k):
    dec = [p for n, p in m.named_parameters() if not pred(n)]
    nod = [p for n, p in m.named_parameters() if pred(n)]
    return opt([{'params': dec}, {'params': nod, 'weight_decay': 0.0}], weight_decay=wd, **kw, **k)
C.append(("adamw wd0.1 --no-decay bias", ['--optimizer','adamw','--lr','1e-2','--weight-decay','0.1','--no-decay','bias'],
          lambda m: groups(m, 0.1, lambda n: n.endswith('bias'), lr=1e-2), {}))
C.append(("sgd wd0.1 --no-decay bias", ['--optimizer','sgd','--lr','0.1','--weight-decay','0.1','--no-decay','bias'],
          lambda m: groups(m, 0.1, lambda n: n.endswith('bias'), opt=O.SGD, lr=0.1), {}))
sel = sys.argv[1:]
for name, flags, mk, tk in C:
    if sel and not any(s in name for s in sel): continue
    try:
        case(name, flags, mk, **tk)
    except Exception as e:
        print(name, "ERROR", e)

# models with norm layers for --no-decay norm / bias,norm
def ln():
    return nn.Sequential(nn.Linear(784, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 10))
harness.set_model("linear(784,32),layernorm(32),relu,linear(32,10)", ln, os.path.join(harness.WORK, 'init_ln.safetensors'))
for name, flags, pred in [("LN adamw --no-decay norm", ['--no-decay','norm'], lambda n: n.startswith('1.')),
                          ("LN adamw --no-decay bias,norm", ['--no-decay','bias,norm'], lambda n: n.startswith('1.') or n.endswith('bias')),
                          ("LN adamw (no --no-decay)", [], lambda n: False)]:
    if sel and not any(s in name for s in sel): continue
    case(name, ['--optimizer','adamw','--lr','1e-2','--weight-decay','0.5'] + flags,
         lambda m, pred=pred: groups(m, 0.5, pred, lr=1e-2))
def bn():
    return nn.Sequential(nn.Linear(784, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
harness.set_model("linear(784,32),batchnorm1d(32),relu,linear(32,10)", bn, os.path.join(harness.WORK, 'init_bn.safetensors'))
for name, flags, pred in [("BN adamw --no-decay bias,norm", ['--no-decay','bias,norm'], lambda n: n.startswith('1.') or n.endswith('bias'))]:
    if sel and not any(s in name for s in sel): continue
    case(name, ['--optimizer','adamw','--lr','1e-2','--weight-decay','0.5'] + flags,
         lambda m, pred=pred: groups(m, 0.5, pred, lr=1e-2))
