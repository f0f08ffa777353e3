from harness import *
O = torch.optim
kw = dict(foreach=False)
C = []
C.append(("sgd plain lr0.1", ['--optimizer','sgd','--lr','0.1'], lambda m: O.SGD(m.parameters(), lr=0.1, **kw)))
C.append(("sgd mom0.9 damp0.1", ['--optimizer','sgd','--lr','0.1','--momentum','0.9','--dampening','0.1'],
          lambda m: O.SGD(m.parameters(), lr=0.1, momentum=0.9, dampening=0.1, **kw)))
C.append(("sgd nesterov mom0.9", ['--optimizer','sgd','--lr','0.1','--momentum','0.9','--nesterov'],
          lambda m: O.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, **kw)))
C.append(("sgd mom0.9 wd1e-2", ['--optimizer','sgd','--lr','0.1','--momentum','0.9','--weight-decay','1e-2'],
          lambda m: O.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2, **kw)))
C.append(("sgd default lr", ['--optimizer','sgd'], lambda m: O.SGD(m.parameters(), lr=1e-3, **kw)))
C.append(("adam default", ['--optimizer','adam'], lambda m: O.Adam(m.parameters(), **kw)))
C.append(("adam wd1e-2 (coupled)", ['--optimizer','adam','--weight-decay','1e-2','--lr','1e-2'], lambda m: O.Adam(m.parameters(), lr=1e-2, weight_decay=1e-2, **kw)))
C.append(("adamw default", ['--optimizer','adamw'], lambda m: O.AdamW(m.parameters(), **kw)))
C.append(("adamw wd0.1 lr1e-2", ['--optimizer','adamw','--weight-decay','0.1','--lr','1e-2'], lambda m: O.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1, **kw)))
C.append(("adam amsgrad", ['--optimizer','adam','--amsgrad','--lr','1e-2'], lambda m: O.Adam(m.parameters(), lr=1e-2, amsgrad=True, **kw)))
C.append(("adamw amsgrad", ['--optimizer','adamw','--amsgrad','--lr','1e-2'], lambda m: O.AdamW(m.parameters(), lr=1e-2, amsgrad=True, **kw)))
C.append(("adam betas .8,.95 eps1e-3", ['--optimizer','adam','--betas','0.8,0.95','--eps','1e-3','--lr','1e-2'],
          lambda m: O.Adam(m.parameters(), lr=1e-2, betas=(0.8,0.95), eps=1e-3, **kw)))
C.append(("adamw betas .5,.9 eps1e-6", ['--optimizer','adamw','--betas','0.5,0.9','--eps','1e-6','--lr','3e-3'],
          lambda m: O.AdamW(m.parameters(), lr=3e-3, betas=(0.5,0.9), eps=1e-6, **kw)))
C.append(("adagrad default", ['--optimizer','adagrad'], lambda m: O.Adagrad(m.parameters(), **kw)))
C.append(("adagrad lr_decay0.1 iav0.5", ['--optimizer','adagrad','--lr','0.05','--lr-decay','0.1','--initial-accumulator-value','0.5'],
          lambda m: O.Adagrad(m.parameters(), lr=0.05, lr_decay=0.1, initial_accumulator_value=0.5, **kw)))
C.append(("adagrad wd1e-2 eps1e-5", ['--optimizer','adagrad','--weight-decay','1e-2','--eps','1e-5'],
          lambda m: O.Adagrad(m.parameters(), weight_decay=1e-2, eps=1e-5, **kw)))
C.append(("rmsprop default", ['--optimizer','rmsprop','--lr','1e-3'], lambda m: O.RMSprop(m.parameters(), lr=1e-3, **kw)))
C.append(("rmsprop default lr", ['--optimizer','rmsprop'], lambda m: O.RMSprop(m.parameters(), **kw)))
C.append(("rmsprop mom0.9 centered a0.9", ['--optimizer','rmsprop','--lr','1e-3','--momentum','0.9','--centered','--alpha','0.9'],
          lambda m: O.RMSprop(m.parameters(), lr=1e-3, momentum=0.9, centered=True, alpha=0.9, **kw)))
C.append(("rmsprop mom0.5 a0.3 wd1e-2 eps1e-4", ['--optimizer','rmsprop','--lr','1e-3','--momentum','0.5','--alpha','0.3','--weight-decay','1e-2','--eps','1e-4'],
          lambda m: O.RMSprop(m.parameters(), lr=1e-3, momentum=0.5, alpha=0.3, weight_decay=1e-2, eps=1e-4, **kw)))
C.append(("rmsprop centered a0.3", ['--optimizer','rmsprop','--lr','1e-3','--centered','--alpha','0.3'],
          lambda m: O.RMSprop(m.parameters(), lr=1e-3, centered=True, alpha=0.3, **kw)))
C.append(("adadelta default", ['--optimizer','adadelta'], lambda m: O.Adadelta(m.parameters(), **kw)))
C.append(("adadelta rho0.5 eps1e-4 wd1e-2", ['--optimizer','adadelta','--rho','0.5','--eps','1e-4','--weight-decay','1e-2','--lr','0.5'],
          lambda m: O.Adadelta(m.parameters(), lr=0.5, rho=0.5, eps=1e-4, weight_decay=1e-2, **kw)))
C.append(("adam decoupled_weight_decay wd1e-2", ['--optimizer','adam','--decoupled-weight-decay','--weight-decay','1e-2','--lr','1e-2'],
          lambda m: O.Adam(m.parameters(), lr=1e-2, decoupled_weight_decay=True, weight_decay=1e-2, **kw)))
C.append(("adamax default", ['--optimizer','adamax'], lambda m: O.Adamax(m.parameters(), **kw)))
C.append(("adamax betas .8,.95 wd1e-2 lr1e-2", ['--optimizer','adamax','--betas','0.8,0.95','--weight-decay','1e-2','--lr','1e-2'],
          lambda m: O.Adamax(m.parameters(), lr=1e-2, betas=(0.8,0.95), weight_decay=1e-2, **kw)))
C.append(("nadam default", ['--optimizer','nadam'], lambda m: O.NAdam(m.parameters(), **kw)))
C.append(("nadam md0.04 wd1e-2 (coupled)", ['--optimizer','nadam','--momentum-decay','0.04','--weight-decay','1e-2','--lr','1e-2'],
          lambda m: O.NAdam(m.parameters(), lr=1e-2, momentum_decay=0.04, weight_decay=1e-2, **kw)))
C.append(("nadam decoupled wd0.1 betas .8,.99", ['--optimizer','nadam','--decoupled-weight-decay','--weight-decay','0.1','--betas','0.8,0.99','--lr','3e-3'],
          lambda m: O.NAdam(m.parameters(), lr=3e-3, decoupled_weight_decay=True, weight_decay=0.1, betas=(0.8,0.99), **kw)))
C.append(("radam default", ['--optimizer','radam'], lambda m: O.RAdam(m.parameters(), **kw)))
C.append(("radam wd1e-2 (coupled) lr1e-2", ['--optimizer','radam','--weight-decay','1e-2','--lr','1e-2'],
          lambda m: O.RAdam(m.parameters(), lr=1e-2, weight_decay=1e-2, **kw)))
C.append(("radam decoupled wd0.1 betas .9,.9", ['--optimizer','radam','--decoupled-weight-decay','--weight-decay','0.1','--betas','0.9,0.9','--lr','3e-3'],
          lambda m: O.RAdam(m.parameters(), lr=3e-3, decoupled_weight_decay=True, weight_decay=0.1, betas=(0.9,0.9), **kw)))
import sys
sel = sys.argv[1:] 
for name, flags, mk in C:
    if sel and not any(s in name for s in sel): continue
    try:
        case(name, flags, mk)
    except Exception as e:
        print(name, "ERROR", e)
