import sys, torch, fmt3
a = dict(x.split("=", 1) for x in sys.argv[1:])
bp, gt = fmt3.install(mtag=a.get("mtag") == "1")
from transformers import AutoModelForCausalLM, AutoTokenizer
from oakdpo.data import load_prontoqa_json
from oakdpo.generation import generate_traces
from oakdpo.config import GenerationConfig
from oakdpo.verify import verify_traces
m = AutoModelForCausalLM.from_pretrained(a["model"]); tok = AutoTokenizer.from_pretrained(a["model"]); m.eval(); tok.padding_side = "left"
ps = load_prontoqa_json("../../../../shared/data/prontoqa/5hop_0shot_random.json")[:int(a.get("n", 6))]
tr = generate_traces(m, tok, ps, 1, GenerationConfig(batch_size=64, max_new_tokens=300), do_sample=False, progress=False)
vs = verify_traces(ps, tr, progress=False)
for p, t, v in zip(ps, tr, vs):
    print(p.query, "| gold:", gt(p).split("\n")[0][:200]); print(t["text"][:900]); print("=>", v["trace_reason"]); print("-----")
