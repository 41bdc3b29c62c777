import sys, time, math, random, json, os
import torch
torch.set_num_threads(2)
a = dict(x.split("=", 1) for x in sys.argv[1:])
import fmt, fmt2, fmt3
bp, gt = fmt3.install(mtag=a.get('mtag') == '1') if a.get('fmt') == '3' else fmt2.install(qfirst=a.get('qfirst') == '1', qtok=a.get('qtok') == '1') if a.get('fmt') == '2' else fmt.install(plan=a.get('plan', '1') == '1')
from transformers import LlamaForCausalLM
from oakdpo.data import generate_problems, load_prontoqa_json
from oakdpo.model import train_tokenizer, build_corpus, tiny_llama_config
from oakdpo.config import ModelConfig, GenerationConfig
from oakdpo.generation import generate_traces
from oakdpo.verify import verify_traces, summarize
d = int(a.get("d", 128)); L = int(a.get("L", 4)); H = int(a.get("H", 4)); lr = float(a.get("lr", 1e-3)); bs = int(a.get("bs", 8))
steps = int(a.get("steps", 600)); n = int(a.get("n", 4000))
torch.manual_seed(0); random.seed(0)
ps = generate_problems(n, (1, 5), seed=0)
tok = train_tokenizer(build_corpus(ps[:1000]), int(a.get("V", 2048)))
def enc(p):
    pr = tok(bp(p))["input_ids"]; full = tok(bp(p) + gt(p) + tok.eos_token)["input_ids"]
    if a.get('full'): return full, [-100] + full[1:]
    return full, [-100] * len(pr) + full[len(pr):]
data = [enc(p) for p in ps]
def reduce(p, keep, rng):
    import dataclasses
    proof_set = set(' '.join(x.split()).rstrip('.') for x in p.proof)
    used = [i for i, x in enumerate(p.premises) if ' '.join(x.split()).rstrip('.') in proof_set]
    other = [i for i in range(len(p.premises)) if i not in used]
    rng.shuffle(other)
    idx = sorted(used + other[:keep])
    return dataclasses.replace(p, premises=[p.premises[i] for i in idx])
ncur = int(a.get("cur", 0))
def enc_drill(p, rng):
    import fmt2
    pr = tok(bp(p))["input_ids"]; ids = list(pr); lab = [-100] * len(pr)
    piece = lambda t: tok(t, add_special_tokens=False)["input_ids"]
    x = piece("Index:"); ids += x; lab += [-100] * len(x)
    order = list(range(len(p.premises))); rng.shuffle(order)
    for i in order:
        fused, key = fmt2.split(" ".join(p.premises[i].split()))
        k = piece(f" {key}"); v = piece(f" {fused}[{i}]")
        ids += k + v; lab += [-100] * len(k) + v
    x = piece("." + tok.eos_token); ids += x; lab += x
    return ids, lab
ndrill = int(a.get("drill", 0))
if ndrill:
    rd = random.Random(5)
    dprobs = generate_problems(ndrill, (1, 5), seed=21)
    if a.get("dkeep"): dprobs = [reduce(q, int(a["dkeep"]), rd) for q in dprobs]
    data = data + [enc_drill(q, rd) for q in dprobs]
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    batches = [order[i:i + bs] for i in range(0, len(order), bs)]
    x, y = data[-1]; print("drill example:", tok.decode(x[-60:]), flush=True)
if ncur:
    rr = random.Random(3)
    small = [reduce(p, int(a.get("keep", 3)), rr) for p in generate_problems(3000, (1, 5), seed=11)]
    small = [q for q in small if gt(q)]
    print("curriculum example:", bp(small[0]) + gt(small[0]), flush=True)
    sdata = [enc(q) for q in small]

mc = ModelConfig(hidden_size=d, num_layers=L, num_heads=H, intermediate_size=int(a.get("ff", 4 * d)))
lc = tiny_llama_config(mc, tok); lc.initializer_range = float(a.get("init", 0.02)); lc.rope_theta = float(a.get("theta", 10000))
if a.get("femb"): lc.tie_word_embeddings = False
model = LlamaForCausalLM(lc)
if a.get("femb"):
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0, 1.0)
    model.model.embed_tokens.weight.requires_grad_(False)
if a.get("mim"):
    from mimetic import mimetic
    mimetic(model, layers=eval(a["mim"]), qk_scale=float(a.get("qks", 1)), ov_scale=float(a.get("ovs", 1)), noise=float(a.get("mnoise", 0.5)))
if a.get("pw"):
    from prewire import prewire
    prewire(model, heads=eval(a.get("pwh", "((0, 1), (1, 2))")), scale=float(a.get("pws", 30)))
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
batches = [order[i:i + bs] for i in range(0, len(order), bs)]
import diag3, diag4
diag = diag4 if a.get('fmt') == '2' else diag3
prep = fmt3.prep if a.get('fmt') == '3' else diag.prep
dv = prep(tok, generate_problems(30, (3, 5), seed=77), bp, gt)
t0 = time.time(); step = 0; warm = int(a.get("warm", 30))
while step < steps:
    random.shuffle(batches)
    for b in batches:
        if step >= steps: break
        cur = lr * min(1, (step + 1) / warm) * (0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups: g["lr"] = cur
        src = sdata if step < ncur else data
        b = [i % len(src) for i in b]
        W = max(len(src[i][0]) for i in b)
        ids = torch.zeros((len(b), W), dtype=torch.long); lab = torch.full((len(b), W), -100); am = torch.zeros((len(b), W), dtype=torch.long)
        for r, i in enumerate(b):
            x, y = src[i]; ids[r, :len(x)] = torch.tensor(x); lab[r, :len(y)] = torch.tensor(y); am[r, :len(x)] = 1
        out = model(input_ids=ids, attention_mask=am, labels=lab)
        out.loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad()
        step += 1
        if step % 100 == 0:
            with torch.no_grad():
                pred = out.logits[:, :-1].argmax(-1); tgt = lab[:, 1:]; m = tgt != -100
                acc = (pred[m] == tgt[m]).float().mean().item()
            if step % int(a.get("dg", 500)) == 0: print("DIAG", step, diag.diag(model, dv), flush=True)
            print("step", step, "t", round(time.time() - t0), "loss", round(out.loss.item(), 3), "acc", round(acc, 3), flush=True)
train_t = time.time() - t0
model.eval(); tok.padding_side = "left"
test = load_prontoqa_json(os.path.join(os.path.dirname(__file__), "../../../../shared/data/prontoqa/5hop_0shot_random.json"))[:int(a.get("ntest", 60))]
val = generate_problems(60, (1, 5), seed=99)
res = {}
for name, probs in (("orig5", test), ("ours", val)):
    tr = generate_traces(model, tok, probs, 1, GenerationConfig(batch_size=64, max_new_tokens=int(a.get("mnt", 300))), do_sample=False, progress=False)
    vs = verify_traces(probs, tr, progress=False)
    res[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in summarize(vs).items()}
    if name == "ours":
        byh = {}
        for p, v in zip(probs, vs): byh.setdefault(p.hops, []).append(v["trace_valid"])
        res["ours_by_hop"] = {h: round(sum(x) / len(x), 2) for h, x in sorted(byh.items())}
    if name == "orig5":
        print(tr[0]["text"][:1500]); print(vs[0]["trace_reason"])
        from collections import Counter
        print(Counter(v["trace_reason"].split(":")[-1][:40] for v in vs).most_common(6))
print("RESULT", json.dumps(dict(args=a, train_s=round(train_t), res=res)), flush=True)
if a.get("save"): model.save_pretrained(a["save"]); tok.save_pretrained(a["save"])
