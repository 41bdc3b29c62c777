import re

from diag3 import diag, encode  # noqa: F401  (same scoring; only the roles differ)
TAG = re.compile(r"^\[\d+\]$")
def prep(tok, probs, bp, gt):
    out = []
    for p in probs:
        pr, full, toks, roles = encode(tok, p, bp, gt)
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
