"""Pre-wire previous-token heads in layer 0 of a HF Llama: constant embedding dim + RoPE phase offsets."""
import math, torch

def prewire(model, heads=((0, 1), (1, 2)), n_freq=6, scale=20.0, const_dim=0, alpha=1.0):
    cfg = model.config
    d, H = cfg.hidden_size, cfg.num_attention_heads
    hd = d // H
    theta = getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]
    inv = [theta ** (-2 * f / hd) for f in range(hd // 2)]
    emb = model.get_input_embeddings().weight
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        emb[:, const_dim] = alpha
        # expected normalized value of the constant component
        rms = torch.sqrt((emb ** 2).mean(-1)).mean().item()
        c = alpha / rms
        w = math.sqrt(scale * math.sqrt(hd) / (n_freq * c * c))
        for h, off in heads:
            q = attn.q_proj.weight[h * hd:(h + 1) * hd]
            k = attn.k_proj.weight[h * hd:(h + 1) * hd]
            q.zero_(); k.zero_()
            for f in range(n_freq):
                # rotate_half pairs dims f and f + hd/2; query along (1, 0), key rotated by -off*theta_f
                ang = off * inv[f]
                q[f, const_dim] = w
                k[f, const_dim] = w * math.cos(ang)
                k[f + hd // 2, const_dim] = w * math.sin(ang)
    return model
