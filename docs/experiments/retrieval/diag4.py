import re, torch, collections
TAG = re.compile(r"^\[\d+\]$")
def prep(tok, probs, bp, gt):
    out = []
    for p in probs:
        pr = tok(bp(p))["input_ids"]; full = tok(bp(p) + gt(p))["input_ids"]
        toks = [tok.decode([i]) for i in full]
        roles = [None] * len(full)
        region = "pre"; k = 0; item = 0; prev = ""
        for t in range(len(pr), len(full)):
            s = toks[t]
            if region == "pre" and s == ":" and toks[t - 1] == " Plan":
                region = "plan"; k = 0; continue
            if region == "plan" and s == ".":
                region = "proof"; roles[t] = "other"; continue
            if region == "plan":
                r = ("key", "fused", "tag")[k % 3]; item = k // 3; k += 1
                roles[t] = f"plan_{r}{'1' if item == 0 else '2+'}"
                continue
            if TAG.match(s): r = "proof_tag"
            elif (" is" in s or " are" in s) and len(s) > 6: r = "proof_fused"
            elif prev == "proof_fused": r = "proof_obj"
            else: r = "other"
            prev = r; roles[t] = r
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
