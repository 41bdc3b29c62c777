import re, torch, collections
TAG = re.compile(r"^ \[\d+\]$")
def encode(tok, p, bp, gt):
    """Prompt ids, prompt + gold ids, their token strings, and a role slot per token."""
    pr = tok(bp(p))["input_ids"]; full = tok(bp(p) + gt(p))["input_ids"]
    return pr, full, [tok.decode([i]) for i in full], [None] * len(full)
def prep(tok, probs, bp, gt):
    out = []
    for p in probs:
        pr, full, toks, roles = encode(tok, p, bp, gt)
        region = "plan"; prev = ""
        for t in range(len(pr), len(full)):
            s = toks[t]
            if region == "plan" and s == "." : region = "proof0"
            if s == "Action": region = "proof" if region != "plan" else region
            if TAG.match(s): r = "tag"
            elif (" is" in s or " are" in s) and len(s) > 6: r = "fused"
            elif prev == "fused": r = "obj"
            else: r = "other"
            prev = r
            if region == "plan" and r in ("fused", "tag", "obj"):
                k = sum(1 for u in range(len(pr), t) if TAG.match(toks[u]))
                r = r + ("1" if k == 0 else "2+")
            roles[t] = region.rstrip("0") + "_" + r if r != "other" else "other"
        out.append((full, roles))
    return out
def diag(model, data):
    hit = collections.Counter(); tot = collections.Counter()
    was = model.training; model.eval()
    with torch.no_grad():
        for ids, roles in data:
            pred = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
            for t in range(1, len(ids)):
                r = roles[t]
                if r is None: continue
                tot[r] += 1; hit[r] += pred[t - 1] == ids[t]
    model.train(was)
    return {r: round(hit[r] / tot[r], 2) for r in sorted(tot)}
