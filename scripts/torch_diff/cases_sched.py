from harness import *
import harness, sys
S = torch.optim.lr_scheduler
O = torch.optim

def sched_case(name, spec, mk_sched, per_batch, lr=0.1, epochs=30, batch=32, limit=32,
               warmup=None, wsf=None, plateau=False, extra=()):
    flags = ['--optimizer', 'sgd', '--lr', str(lr), '--schedule', spec] + list(extra)
    if warmup:
        flags += ['--warmup', str(warmup)]
    if wsf is not None:
        flags += ['--warmup-start-factor', str(wsf)]
    kp, klog, kep, cmd = run_kiln(flags, None, batch=batch, limit=limit, epochs=epochs)
    klr = [e['lr'] for e in klog]
    pm = None
    if plateau:
        kl = [e['train_loss'] for e in kep]
        pm = lambda epoch, own: kl[epoch - 1]
    def mk_opt(m):
        return O.SGD(m.parameters(), lr=lr, foreach=False)
    snaps, losses, tlr, _ = run_torch(mk_opt, None, batch=batch, limit=limit, epochs=epochs,
                                      make_sched=mk_sched, per_batch=per_batch, plateau_metric=pm)
    n = min(len(klr), len(tlr))
    rels = [abs(a - b) / max(abs(b), 1e-30) for a, b in zip(klr, tlr)]
    worst = max(range(n), key=lambda i: rels[i])
    first_bad = next((i for i in range(n) if rels[i] > 1e-6), None)
    d = diff(kp, snaps['final'])
    print(f"{name:44s} steps {len(klr)}/{len(tlr)} lr maxrel {rels[worst]:.1e} @step{worst+1} "
          f"(kiln {klr[worst]:.6g} torch {tlr[worst]:.6g}) first>1e-6: {None if first_bad is None else first_bad+1} | "
          f"params relU {d['rel_to_update']:.1e} loss rel {rel_seq([e['loss'] for e in klog], losses):.1e}", flush=True)
    return klr, tlr, cmd

C = []
C.append(("step size3 g0.5", "step:step_size=3,gamma=0.5", lambda o: S.StepLR(o, 3, 0.5), False, {}))
C.append(("multistep 2;5;5;9 g0.5", "multistep:milestones=2;5;5;9,gamma=0.5", lambda o: S.MultiStepLR(o, [2,5,5,9], 0.5), False, {}))
C.append(("multistep unordered 9;2 default g", "multistep:milestones=9;2", lambda o: S.MultiStepLR(o, [9,2]), False, {}))
C.append(("exponential g0.9", "exponential:gamma=0.9", lambda o: S.ExponentialLR(o, 0.9), False, {}))
C.append(("cosine tmax10 eta0.01 (past t_max)", "cosine:t_max=10,eta_min=0.01", lambda o: S.CosineAnnealingLR(o, 10, 0.01), False, {}))
C.append(("cosine tmax30", "cosine:t_max=30", lambda o: S.CosineAnnealingLR(o, 30), False, {}))
C.append(("cosine_restarts t0=3 tmult=2 eta1e-3", "cosine_restarts:t_0=3,t_mult=2,eta_min=0.001", lambda o: S.CosineAnnealingWarmRestarts(o, 3, 2, 0.001), False, {}))
C.append(("cosine_restarts t0=4", "cosine_restarts:t_0=4", lambda o: S.CosineAnnealingWarmRestarts(o, 4), False, {}))
cyc = lambda **k: (lambda o: S.CyclicLR(o, cycle_momentum=False, **k))
C.append(("cyclic triangular up4", "cyclic:base_lr=0.01,max_lr=0.1,step_size_up=4", cyc(base_lr=0.01, max_lr=0.1, step_size_up=4), True, dict(batch=8, limit=64, epochs=5)))
C.append(("cyclic triangular up4 down6", "cyclic:base_lr=0.01,max_lr=0.1,step_size_up=4,step_size_down=6", cyc(base_lr=0.01, max_lr=0.1, step_size_up=4, step_size_down=6), True, dict(batch=8, limit=64, epochs=5)))
C.append(("cyclic triangular2 up3", "cyclic:base_lr=0.01,max_lr=0.1,step_size_up=3,mode=triangular2", cyc(base_lr=0.01, max_lr=0.1, step_size_up=3, mode='triangular2'), True, dict(batch=8, limit=64, epochs=5)))
C.append(("cyclic exp_range up3 g0.95", "cyclic:base_lr=0.01,max_lr=0.1,step_size_up=3,mode=exp_range,gamma=0.95", cyc(base_lr=0.01, max_lr=0.1, step_size_up=3, mode='exp_range', gamma=0.95), True, dict(batch=8, limit=64, epochs=5)))
C.append(("onecycle max0.1 total40", "onecycle:max_lr=0.1,total_steps=40", lambda o: S.OneCycleLR(o, 0.1, total_steps=40, cycle_momentum=False), True, dict(batch=8, limit=64, epochs=5)))
C.append(("onecycle linear pct0.25 div10 fdiv100", "onecycle:max_lr=0.1,total_steps=40,pct_start=0.25,anneal=linear,div_factor=10,final_div_factor=100",
          lambda o: S.OneCycleLR(o, 0.1, total_steps=40, pct_start=0.25, anneal_strategy='linear', div_factor=10, final_div_factor=100, cycle_momentum=False), True, dict(batch=8, limit=64, epochs=5)))
C.append(("onecycle three_phase", "onecycle:max_lr=0.1,total_steps=40,three_phase=true", lambda o: S.OneCycleLR(o, 0.1, total_steps=40, three_phase=True, cycle_momentum=False), True, dict(batch=8, limit=64, epochs=5)))
C.append(("plateau f0.5 pat1 thr0.05", "plateau:factor=0.5,patience=1,threshold=0.05", lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.05), False, dict(plateau=True)))
C.append(("plateau f0.5 pat0 abs thr0.01 cooldown2 min_lr0.02", "plateau:factor=0.5,patience=0,threshold=0.01,threshold_mode=abs,cooldown=2,min_lr=0.02",
          lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=0, threshold=0.01, threshold_mode='abs', cooldown=2, min_lr=0.02), False, dict(plateau=True)))
# warm-up: kiln documents ChainedScheduler([LinearLR(start, total_iters=N), schedule])
def chain(mk, n, sf=1/3):
    return lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=sf, total_iters=n), mk(o)])
def seq(mk, n, sf=1/3):
    return lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=sf, total_iters=n), mk(o)], milestones=[n])
C.append(("warmup5 + constant (chain)", "constant", chain(lambda o: S.ConstantLR(o, factor=1.0), 5), False, dict(warmup=5)))
C.append(("warmup5 + step3 g0.5 (chain)", "step:step_size=3,gamma=0.5", chain(lambda o: S.StepLR(o, 3, 0.5), 5), False, dict(warmup=5)))
C.append(("warmup5 sf0.1 + exponential (chain)", "exponential:gamma=0.9", chain(lambda o: S.ExponentialLR(o, 0.9), 5, 0.1), False, dict(warmup=5, wsf=0.1)))
C.append(("warmup5 + cosine t30 (chain)", "cosine:t_max=30", chain(lambda o: S.CosineAnnealingLR(o, 30), 5), False, dict(warmup=5)))
C.append(("warmup5 + cosine t30 eta.01 (chain)", "cosine:t_max=30,eta_min=0.01", chain(lambda o: S.CosineAnnealingLR(o, 30, 0.01), 5), False, dict(warmup=5)))
C.append(("warmup5 + cosine t30 (SequentialLR)", "cosine:t_max=30", seq(lambda o: S.CosineAnnealingLR(o, 30), 5), False, dict(warmup=5)))
C.append(("warmup8 + onecycle (chain)", "onecycle:max_lr=0.1,total_steps=40", chain(lambda o: S.OneCycleLR(o, 0.1, total_steps=40, cycle_momentum=False), 8), True, dict(warmup=8, batch=8, limit=64, epochs=5)))
if __name__ == "__main__":
    sel = sys.argv[1:]
    for name, spec, mk, pb, k in C:
        if sel and not any(s in name for s in sel): continue
        if mk is None: continue
        try:
            sched_case(name, spec, mk, pb, **k)
        except Exception as e:
            print(name, "ERROR", repr(e)[:400])
