"""Session-6 test bed for the last step's format (docs/tiny-model.md, change 6); a prototype, not part of the package.

Continued SFT (plain torch loop, completion-only loss, frozen input embeddings) of a trained SFT model on gold traces
whose last step is rewritten, then teacher-forced accuracy of the answer token (" true" / " false"). Written for the
format of the time ("[28] Max is not bright. So the query is true."), which the package no longer writes; gold_trace
now produces the q4 form itself, so run it against the commit before the [Q] change (b9d2acc) to reproduce:

    python docs/experiments/answer_format.py --base OLD_RUN/sft --train OLD_RUN/data/train.jsonl \
        --val OLD_RUN/data/val.jsonl --heldout ../shared/data/prontoqa/5hop_0shot_random.json --fmt q4 --steps 600
"""
import json, random, re, sys, time, torch, argparse
from transformers import AutoTokenizer, AutoModelForCausalLM
from oakdpo import formats
ap = argparse.ArgumentParser()
ap.add_argument("--base", required=True); ap.add_argument("--fmt", default="cur")
ap.add_argument("--steps", type=int, default=400); ap.add_argument("--lr", type=float, default=5e-4)
ap.add_argument("--train", required=True); ap.add_argument("--val", required=True)
ap.add_argument("--heldout", default=""); ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.manual_seed(a.seed); random.seed(a.seed)
tok = AutoTokenizer.from_pretrained(a.base); model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32)
QT = "[Q]"
if a.fmt != "cur":
    tok.add_tokens([QT]); model.resize_token_embeddings(len(tok))
    with torch.no_grad():
        E = model.get_input_embeddings().weight; E[-1] = torch.randn(E.shape[1])  # unit-RMS like the others
        model.lm_head.weight[-1] = model.lm_head.weight[:-1].mean(0)
ans_re = re.compile(r"Thought: \[(\d+)\] (.*?) So the query is (true|false)\.")

def fmt(problem):
    pr = formats.build_prompt(problem); g = formats.gold_trace(problem)
    if g is None: return None
    st = formats.query_statement(problem.query)
    head, _, last = st.rpartition(" ")
    m = ans_re.search(g); k, claim, word = m.groups()
    if a.fmt == "cur":
        return pr, g, g[:m.start(3)]
    pr = pr.replace(f"Query: {problem.query}", f"Query: True or false: {head}{QT} {last}", 1)
    if a.fmt == "q1":   # derived, then restated query, then answer
        new = f"Thought: [{k}] {claim} {QT} {st} So the query is {word}."
        pre = new[:new.rindex(word)]
    elif a.fmt == "q2":  # restated query then derived
        new = f"Thought: {QT} {st} [{k}] {claim} So the query is {word}."
        pre = new[:new.rindex(word)]
    elif a.fmt == "q4":  # answer right after the restated query
        new = f"Thought: [{k}] {claim} So {QT} {st[:-1]}: {word}."
        pre = new[:new.rindex(word)]
    g2 = g[:m.start()] + new + g[m.end():]
    return pr, g2, g2[:m.start()] + pre
def load(path, n=None):
    ps = [formats.Problem.from_dict(json.loads(l)) for l in open(path)]
    return ps[:n] if n else ps
train = [x for x in (fmt(p) for p in load(a.train)) if x]
val = [x for x in (fmt(p) for p in load(a.val)) if x]
orig = []
if a.heldout:
    from oakdpo.data import load_prontoqa_json
    orig = [x for x in (fmt(p) for p in load_prontoqa_json(a.heldout)[:100]) if x]
print(train[0][0][:80], "\n", train[0][1][-260:])
T, F = tok(" true", add_special_tokens=False)["input_ids"], tok(" false", add_special_tokens=False)["input_ids"]
assert len(T) == 1 and len(F) == 1; T, F = T[0], F[0]
def enc(x):
    pr, g, pre = x
    ids = tok(pr + g + tok.eos_token)["input_ids"]; npr = len(tok(pr)["input_ids"])
    apos = len(tok(pr + pre.rstrip(" "))["input_ids"])  # index of the answer token
    return ids, npr, apos
@torch.no_grad()
def evaluate(data, name):
    model.eval(); ok = 0; pc = 0.0; n = 0; said_true = 0
    for x in data:
        ids, npr, apos = enc(x)
        lg = model(torch.tensor([ids])).logits[0, apos - 1]
        gold = ids[apos]; assert gold in (T, F), tok.decode([gold])
        p = torch.softmax(lg[[T, F]], -1); pt = p[0].item()
        pc += pt if gold == T else 1 - pt; ok += (pt > 0.5) == (gold == T); said_true += pt > 0.5; n += 1
    print(f"  {name}: answer acc {ok/n:.3f}  P(correct) {pc/n:.3f}  says-true {said_true/n:.2f}  n={n}", flush=True)
    model.train()
evaluate(val, "val"); orig and evaluate(orig, "orig5hop")
model.get_input_embeddings().weight.requires_grad_(False)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 20) * max(0.0, 1 - s / a.steps))
encoded = [enc(x) for x in train]
model.train(); t0 = time.time(); B = 8
for step in range(a.steps):
    batch = random.sample(encoded, B); L = max(len(b[0]) for b in batch)
    ids = torch.full((B, L), tok.pad_token_id); lab = torch.full((B, L), -100); att = torch.zeros((B, L), dtype=torch.long)
    for i, (x, npr, _) in enumerate(batch):
        ids[i, :len(x)] = torch.tensor(x); att[i, :len(x)] = 1; lab[i, npr:len(x)] = torch.tensor(x[npr:])
    loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
    loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
    if (step + 1) % 100 == 0:
        print(f"step {step+1} loss {loss.item():.4f} {time.time()-t0:.0f}s", flush=True)
        if (step + 1) % 200 == 0 or step + 1 == a.steps:
            evaluate(val, "val"); orig and evaluate(orig, "orig5hop")
