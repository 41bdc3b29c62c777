import torch, math
def mimetic(model, layers=None, qk_scale=1.0, ov_scale=1.0, noise=0.5, seed=0):
    """Q^T K ~ projection (tokens attend to similar tokens), O V ~ projection (copy); RoPE: use only slow freq dims."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config; d = cfg.hidden_size; H = cfg.num_attention_heads; hd = d // H
    for li, layer in enumerate(model.model.layers):
        if layers is not None and li not in layers: continue
        at = layer.self_attn
        with torch.no_grad():
            for h in range(H):
                P = torch.linalg.qr(torch.randn(d, hd, generator=g))[0].T  # hd x d orthonormal rows
                q = P * math.sqrt(qk_scale * math.sqrt(hd))
                # zero the fast half of the rotary dims: keep dims with slow frequency
                mask = torch.zeros(hd, 1)
                half = hd // 2
                mask[half // 2:half] = 1; mask[half + half // 2:] = 1
                at.q_proj.weight[h*hd:(h+1)*hd] = q * mask + noise * at.q_proj.weight[h*hd:(h+1)*hd]
                at.k_proj.weight[h*hd:(h+1)*hd] = q * mask + noise * at.k_proj.weight[h*hd:(h+1)*hd]
                at.v_proj.weight[h*hd:(h+1)*hd] = P * ov_scale + noise * at.v_proj.weight[h*hd:(h+1)*hd]
                at.o_proj.weight[:, h*hd:(h+1)*hd] = P.T * ov_scale + noise * at.o_proj.weight[:, h*hd:(h+1)*hd]
    return model
