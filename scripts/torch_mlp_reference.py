"""PyTorch on the foundation issue's recipe, for side-by-side accuracy with kiln.

`mlp` 784-256-128-10 (nn.Linear's default init), AdamW lr 1e-3 (PyTorch's defaults:
betas 0.9/0.999, eps 1e-8, weight decay 0.01), batch 128, reshuffled each epoch, inputs
pixel/255, full Fashion-MNIST from /usr/share/datasets/fashion-mnist (apt-get install
dataset-fashion-mnist). Prints the test accuracy after each epoch for each seed.

Usage: python3 scripts/torch_mlp_reference.py [EPOCHS=5] [SEEDS=5] [MODEL=mlp]
(MODEL: mlp, cnn or resnet, the layers of kiln's presets from torch_bench_reference.py;
images/s is the training loop's, evaluation excluded.)
"""
import gzip, numpy as np, torch, torch.nn as nn, time, sys
from torch_bench_reference import MODELS
torch.set_num_threads(2)
d='/usr/share/datasets/fashion-mnist/'
def idx(f, off):
    return np.frombuffer(gzip.open(d+f).read(), np.uint8, offset=off)
xtr=torch.tensor(idx('train-images-idx3-ubyte.gz',16).reshape(-1,784)/255.0,dtype=torch.float32)
ytr=torch.tensor(idx('train-labels-idx1-ubyte.gz',8).astype(np.int64))
xte=torch.tensor(idx('t10k-images-idx3-ubyte.gz',16).reshape(-1,784)/255.0,dtype=torch.float32)
yte=torch.tensor(idx('t10k-labels-idx1-ubyte.gz',8).astype(np.int64))
epochs=int(sys.argv[1]) if len(sys.argv)>1 else 5
name=sys.argv[3] if len(sys.argv)>3 else 'mlp'
shape=(-1,784) if name=='mlp' else (-1,1,28,28)
for seed in range(int(sys.argv[2]) if len(sys.argv)>2 else 5):
    torch.manual_seed(seed)
    m=MODELS[name]()
    opt=torch.optim.AdamW(m.parameters(),lr=1e-3)
    accs=[]
    t0=time.time()
    train_s=0.0
    for e in range(epochs):
        perm=torch.randperm(len(xtr))
        m.train()
        t1=time.time()
        for i in range(0,len(xtr),128):
            b=perm[i:i+128]
            loss=nn.functional.cross_entropy(m(xtr[b].reshape(shape)),ytr[b])
            opt.zero_grad(); loss.backward(); opt.step()
        train_s+=time.time()-t1
        m.eval()
        with torch.no_grad():
            accs.append((m(xte.reshape(shape)).argmax(1)==yte).float().mean().item()*100)
    print(f"seed {seed} {name}: " + " ".join(f"{a:.2f}" for a in accs)
          + f"  ({time.time()-t0:.1f}s, {epochs*len(xtr)/train_s:.0f} img/s training)", flush=True)
