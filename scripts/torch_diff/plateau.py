"""ReduceLROnPlateau in rel/abs and min/max modes, fed the metric kiln used (the epoch's
training loss, or accuracy in max mode, when there is no --val-split)."""
from cases_sched import *
for name, spec, k in [("plateau thr0.5 pat1", "plateau:factor=0.5,patience=1,threshold=0.5", {}),
                      ("plateau abs thr0.2 pat0 cd2 minlr0.02", "plateau:factor=0.5,patience=0,threshold=0.2,threshold_mode=abs,cooldown=2,min_lr=0.02", {}),
                      ("plateau max acc thr0.5 pat1", "plateau:mode=max,factor=0.3,patience=1,threshold=0.5", {})]:
    import re
    kw = dict(factor=float(re.search(r'factor=([0-9.]+)', spec).group(1)), patience=int(re.search(r'patience=(\d+)', spec).group(1)),
              threshold=float(re.search(r'threshold=([0-9.]+)', spec).group(1)))
    if 'abs' in spec: kw.update(threshold_mode='abs', cooldown=2, min_lr=0.02)
    if 'max' in spec: kw.update(mode='max')
    mk = lambda o, kw=kw: S.ReduceLROnPlateau(o, **kw)
    if 'max' in spec:
        # kiln feeds train_accuracy in max mode; feed torch the same values
        kp, klog, kep, cmd = run_kiln(['--optimizer','sgd','--lr','0.1','--schedule',spec], None, batch=32, limit=32, epochs=30)
        acc = [e['train_accuracy'] for e in kep]
        snaps, losses, tlr, _ = run_torch(lambda m: O.SGD(m.parameters(), lr=0.1, foreach=False), None, batch=32, limit=32, epochs=30,
                                          make_sched=mk, plateau_metric=lambda ep, own: acc[ep-1])
        klr = [e['lr'] for e in klog]
        print(name, 'maxrel', rel_seq(klr, tlr)); print('  kiln ', [f'{x:.4g}' for x in klr]); print('  torch', [f'{x:.4g}' for x in tlr])
        continue
    try:
        klr, tlr, cmd = sched_case(name, spec, mk, False, plateau=True, **k)
    except Exception as e:
        print(name, 'ERROR', repr(e)[:300]); continue
    print('  kiln ', [f'{x:.4g}' for x in klr]); print('  torch', [f'{x:.4g}' for x in tlr])
