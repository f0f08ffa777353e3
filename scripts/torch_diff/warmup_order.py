import torch, math
S=torch.optim.lr_scheduler
def seqlr(mk, n=30):
    p=torch.nn.Parameter(torch.zeros(1)); o=torch.optim.SGD([p], lr=0.1); s=mk(o); out=[]
    for t in range(n):
        out.append(o.param_groups[0]['lr']); o.step(); s.step()
    return out
prod=[(0.01+(0.1-0.01)*(1+math.cos(math.pi*t/30))/2) * (1/3+(2/3)*min(t,5)/5) for t in range(30)]
a=seqlr(lambda o: S.ChainedScheduler([S.LinearLR(o,1/3,total_iters=5), S.CosineAnnealingLR(o,30,0.01)]))
b=seqlr(lambda o: S.ChainedScheduler([S.CosineAnnealingLR(o,30,0.01), S.LinearLR(o,1/3,total_iters=5)]))
print('kiln-product vs [LinearLR,Cosine] maxrel', max(abs(x-y)/y for x,y in zip(prod,a)))
print('kiln-product vs [Cosine,LinearLR] maxrel', max(abs(x-y)/y for x,y in zip(prod,b)))
print('t: product, [Lin,Cos], [Cos,Lin]'); [print(t, f'{prod[t]:.6f} {a[t]:.6f} {b[t]:.6f}') for t in range(8)]
