"""1 - beta2, 1 - alpha, 1 - rho near 1: kiln computed them in f32 from the f32-rounded
hyperparameter until 13c755d; PyTorch computes them as Python floats (1 - 0.999 = 0.001) and
only then rounds to f32, as kiln now does. Runs kiln N steps (same init, same batches) and
PyTorch f32 and f64 from the same start; kiln's distance from f64 should match PyTorch f32's."""
from harness import *
import harness
O = torch.optim; kw = dict(foreach=False)
harness.REF64 = True
for name, flags, mk, steps in [
    ("adam default (b2=0.999)", ['--optimizer','adam'], lambda m: O.Adam(m.parameters(), **kw), (1, 10)),
    ("adam b2=0.9999", ['--optimizer','adam','--betas','0.9,0.9999'], lambda m: O.Adam(m.parameters(), betas=(0.9,0.9999), **kw), (1, 10)),
    ("adamw b2=0.99999", ['--optimizer','adamw','--betas','0.9,0.99999'], lambda m: O.AdamW(m.parameters(), betas=(0.9,0.99999), **kw), (1, 10)),
    ("rmsprop alpha=0.9999", ['--optimizer','rmsprop','--lr','1e-3','--alpha','0.9999'], lambda m: O.RMSprop(m.parameters(), lr=1e-3, alpha=0.9999, **kw), (1, 3)),
    ("adadelta rho=0.9999", ['--optimizer','adadelta','--rho','0.9999'], lambda m: O.Adadelta(m.parameters(), rho=0.9999, **kw), (1, 3)),
]:
    case(name, flags, mk, steps_list=steps)
