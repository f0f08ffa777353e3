"""The differential runs' data: the first 256 training and 64 test images of Fashion-MNIST
(gzip IDX files in $FASHION_MNIST_DIR, default /usr/share/datasets/fashion-mnist), as raw
IDX files under $TORCHDIFF_DIR/data (default /tmp/torchdiff)."""
import gzip, numpy as np, struct, os
d=os.environ.get('FASHION_MNIST_DIR', '/usr/share/datasets/fashion-mnist') + '/'
def idx(f, off): return np.frombuffer(gzip.open(d+f).read(), np.uint8, offset=off)
out=os.path.join(os.environ.get('TORCHDIFF_DIR', '/tmp/torchdiff'), 'data') + '/'
os.makedirs(out, exist_ok=True)
def wimg(name, a):
    with open(out+name,'wb') as f:
        f.write(struct.pack('>IIII',0x803,len(a),28,28)); f.write(a.tobytes())
def wlab(name, a):
    with open(out+name,'wb') as f:
        f.write(struct.pack('>II',0x801,len(a))); f.write(a.tobytes())
xtr=idx('train-images-idx3-ubyte.gz',16).reshape(-1,784); ytr=idx('train-labels-idx1-ubyte.gz',8)
xte=idx('t10k-images-idx3-ubyte.gz',16).reshape(-1,784); yte=idx('t10k-labels-idx1-ubyte.gz',8)
wimg('train-images-idx3-ubyte', xtr[:256]); wlab('train-labels-idx1-ubyte', ytr[:256])
wimg('t10k-images-idx3-ubyte', xte[:64]); wlab('t10k-labels-idx1-ubyte', yte[:64])
