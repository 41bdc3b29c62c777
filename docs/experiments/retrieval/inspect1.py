"""Print the saved model's top predictions at the first plan item (after the first key) for a few problems."""
import sys, torch
a = dict(x.split("=", 1) for x in sys.argv[1:])
import fmt2
bp, gt = fmt2.install(qfirst=a.get('qfirst') == '1', qtok=a.get('qtok') == '1')
from transformers import AutoModelForCausalLM, AutoTokenizer
from oakdpo.data import generate_problems
m = AutoModelForCausalLM.from_pretrained(a["model"]); tok = AutoTokenizer.from_pretrained(a["model"]); m.eval()
for p in generate_problems(8, (3, 5), seed=77):
    full = tok(bp(p) + gt(p))["input_ids"]; toks = [tok.decode([i]) for i in full]
    j = next(t for t in range(len(toks)) if toks[t] == " Plan") + 2  # key1 position
    with torch.no_grad():
        lg = m(torch.tensor([full[:j + 1]])).logits[0, -1]
    top = lg.softmax(-1).topk(4)
    print(repr(toks[j]), "->", repr(toks[j + 1]), "| pred", [(tok.decode([int(i)]), round(float(v), 2)) for v, i in zip(top.values, top.indices)])
