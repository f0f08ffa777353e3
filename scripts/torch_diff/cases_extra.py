from harness import *
import harness, sys, math
S = torch.optim.lr_scheduler; O = torch.optim; kw = dict(foreach=False)
def groups(m, wd, pred, opt=O.AdamW, **k):
    dec = [p for n, p in m.named_parameters() if not pred(n)]; nod = [p for n, p in m.named_parameters() if pred(n)]
    return opt([{'params': dec}, {'params': nod, 'weight_decay': 0.0}], weight_decay=wd, **kw, **k)
chain = lambda mk, n, sf=1/3: (lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=sf, total_iters=n), mk(o)]))
# per-epoch schedule with several steps/epoch: batch 32 over 256 = 8 steps per epoch, 5 epochs
case("adamw+nodecay bias+cosine t5+warmup2", ['--optimizer','adamw','--lr','1e-2','--weight-decay','0.1','--no-decay','bias','--schedule','cosine:t_max=5','--warmup','2'],
     lambda m: groups(m, 0.1, lambda n: n.endswith('bias'), lr=1e-2), steps_list=(1, 9, 40),
     make_sched=chain(lambda o: S.CosineAnnealingLR(o, 5), 2))
case("adagrad lr_decay0.1 + step sched", ['--optimizer','adagrad','--lr','0.05','--lr-decay','0.1','--schedule','step:step_size=1,gamma=0.5'],
     lambda m: O.Adagrad(m.parameters(), lr=0.05, lr_decay=0.1, **kw), steps_list=(1, 9, 24), make_sched=lambda o: S.StepLR(o, 1, 0.5))
case("sgd mom wd1e-2 + clip-norm 0.3", ['--optimizer','sgd','--lr','0.1','--momentum','0.9','--weight-decay','1e-2','--clip-norm','0.3'],
     lambda m: O.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2, **kw), clip_norm=0.3)
case("partial last batch: batch 48 (256=5x48+16)", ['--optimizer','sgd','--lr','0.1','--momentum','0.9'],
     lambda m: O.SGD(m.parameters(), lr=0.1, momentum=0.9, **kw), steps_list=(5, 6, 12), batch=48)
case("rmsprop alpha0.999", ['--optimizer','rmsprop','--lr','1e-3','--alpha','0.999'], lambda m: O.RMSprop(m.parameters(), lr=1e-3, alpha=0.999, **kw))
case("rmsprop alpha0.9999", ['--optimizer','rmsprop','--lr','1e-3','--alpha','0.9999'], lambda m: O.RMSprop(m.parameters(), lr=1e-3, alpha=0.9999, **kw))
case("adadelta rho0.9999", ['--optimizer','adadelta','--rho','0.9999'], lambda m: O.Adadelta(m.parameters(), rho=0.9999, **kw))
case("adam betas 0.9,0.9999", ['--optimizer','adam','--betas','0.9,0.9999'], lambda m: O.Adam(m.parameters(), betas=(0.9,0.9999), **kw))
case("adamw betas 0.9,0.99999", ['--optimizer','adamw','--betas','0.9,0.99999'], lambda m: O.AdamW(m.parameters(), betas=(0.9,0.99999), **kw))
# l1 at exactly-zero weights: torch's d|w|/dw at 0 is 0 (sign)
def zero_init():
    sd = load_file(os.path.join(harness.WORK, 'init.safetensors')); sd['2.weight'][:, :16] = 0.0; sd['0.bias'][:] = 0.0
    save_file(sd, os.path.join(harness.WORK, 'init_zeros.safetensors'))
zero_init()
harness.set_model(harness.MODEL, harness.build_default, os.path.join(harness.WORK, 'init_zeros.safetensors'))
case("l1 1e-2 with exact-zero weights", ['--optimizer','sgd','--lr','0.1','--l1','1e-2'], lambda m: O.SGD(m.parameters(), lr=0.1, **kw), l1=1e-2)
