import torch, time, sys
torch.set_num_threads(1)
from transformers import LlamaConfig, LlamaForCausalLM
a = dict(x.split("=") for x in sys.argv[1:])
init=float(a.get("init",0.02)); T=int(a.get("T",8)); lr=float(a.get("lr",1e-3)); L=int(a.get("L",2)); STEPS=int(a.get("steps",1500))
d=int(a.get("d",128)); H=int(a.get("H",4)); B=int(a.get("B",16)); wd=float(a.get("wd",0.0)); warm=int(a.get("warm",0))
torch.manual_seed(0)
V=int(a.get("V",64))
cfg = LlamaConfig(vocab_size=V, hidden_size=d, num_hidden_layers=L, num_attention_heads=H, num_key_value_heads=H,
                  intermediate_size=4*d, initializer_range=init, tie_word_embeddings=a.get("tie","1")=="1", max_position_embeddings=1024,
                  rope_theta=float(a.get("theta",10000)))
m = LlamaForCausalLM(cfg)
if a.get('mim'):
    from mimetic import mimetic
    mimetic(m, layers=eval(a.get('mim')), qk_scale=float(a.get("qks",1)), ov_scale=float(a.get("ovs",1)), noise=float(a.get("mn",0.5)))
if a.get('pw'):
    from prewire import prewire
    prewire(m, heads=((0,1),), scale=float(a.get('pws',30)))
    cfg._attn_implementation='eager'
    x=torch.randint(0,64,(1,20)); att=m(x,output_attentions=True).attentions[0][0,0]
    print('prev-token attn mass', att[torch.arange(1,20), torch.arange(0,19)].mean().item())
opt = torch.optim.AdamW(m.parameters(), lr=lr, betas=(0.9, float(a.get("b2",0.95))), weight_decay=wd)
t0=time.time()
for step in range(1, STEPS+1):
    if warm:
        for g in opt.param_groups: g["lr"] = lr*min(1,step/warm)
    keys = torch.stack([torch.randperm(V//2)[:T] for _ in range(B)])
    vals = torch.randint(V//2, V, (B, T))
    ctx = torch.stack([keys, vals], -1).reshape(B, -1)
    q = torch.stack([torch.randperm(T)[:8] for _ in range(B)])
    qk = torch.gather(keys, 1, q); qv = torch.gather(vals, 1, q)
    qs = torch.stack([qk, qv], -1).reshape(B, -1)
    x = torch.cat([ctx, qs], 1)
    lab = torch.full_like(x, -100)
    lab[:, ctx.shape[1]+1::2] = x[:, ctx.shape[1]+1::2]
    out = m(input_ids=x, labels=lab)
    out.loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(),1.0); opt.step(); opt.zero_grad()
    if step % 250 == 0:
        with torch.no_grad():
            pred = out.logits[:, :-1].argmax(-1); tgt = lab[:, 1:]; mk = tgt != -100
            print(a, step, round(time.time()-t0), round(out.loss.item(),3), round((pred[mk]==tgt[mk]).float().mean().item(),3), flush=True)
