"""kiln --backend gpu vs --backend cpu checkpoints (params and BN buffers), same init/batches, SGD 0.1 and AdamW, 3 steps."""
import harness, cnn
from cnn import *
for tag, spec, bn in CASES:
    use(spec, tag)
    init = load_file(harness.INIT)
    for oname, (flags, mk) in (('sgd', SGD), ('adamw', ADAMW)):
        ck = {}
        for be in ('cpu', 'gpu'):
            os.environ['KILN_BACKEND'] = be
            kp, klog, _, _ = run_kiln(flags, 3)
            ck[be] = (load_file(f"{LAST['dir']}/ck.safetensors"), [e['loss'] for e in klog])
        worst, wk = 0, ''
        for k, v in ck['cpu'][0].items():
            if k.startswith('optim.') or 'num_batches' in k: continue
            if bn and k.endswith('bias') and spec.split(',')[0].startswith('conv') and k in ('0.bias', '4.bias'): continue
            u = (v.double() - init[k].double()).abs().max().item()
            d = (ck['gpu'][0][k].double() - v.double()).abs().max().item() / max(u, 1e-30)
            if d > worst: worst, wk = d, k
        print(f"{tag:4s} {oname:5s} gpu-vs-cpu worst relU {worst:.1e} ({wk}); loss rel {rel_seq(ck['gpu'][1], ck['cpu'][1]):.1e}; keys equal {set(ck['gpu'][0]) == set(ck['cpu'][0])}", flush=True)
