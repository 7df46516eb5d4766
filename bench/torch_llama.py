"""torch_llama.py: PyTorch's prefill speed on a plain Hugging Face-style
Llama forward pass with random weights, for bench/peers.sh.

    python3 torch_llama.py --shape tinyllama --dtype bf16|fp32 \
        --tokens 512 --threads 2 --rounds 3

Prints one line per round: "prefill_tps=X".  The forward pass is the one
transformers' LlamaModel computes (RMSNorm, rotate-half RoPE, grouped
query attention with a causal mask, SwiGLU MLP, final norm, lm_head on
the last token as a generation step computes it), written out in plain
torch so that it runs on the torch Debian ships (1.13) without the
transformers package.
"""
import argparse
import time

import torch

SHAPES = {  # name: layers, d_model, heads, kv_heads, ffn, vocab
    "tinyllama": (22, 2048, 32, 4, 5632, 32000),
    "llama2-7b": (32, 4096, 32, 32, 11008, 32000),
}


def rms_norm(x, w, eps=1e-5):
    var = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(var + eps)).to(x.dtype) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="tinyllama")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n_layer, d, n_head, n_kv, ffn, vocab = SHAPES[a.shape]
    hd = d // n_head
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32

    def lin(o, i):
        return (torch.randn(o, i) * 0.02).to(dt)

    emb = lin(vocab, d)
    layers = [dict(an=torch.ones(d, dtype=dt), q=lin(n_head * hd, d), k=lin(n_kv * hd, d),
                   v=lin(n_kv * hd, d), o=lin(d, n_head * hd), fn=torch.ones(d, dtype=dt),
                   g=lin(ffn, d), u=lin(ffn, d), dn=lin(d, ffn)) for _ in range(n_layer)]
    norm = torch.ones(d, dtype=dt)
    head = lin(vocab, d)
    T = a.tokens
    ids = torch.arange(T) % (vocab - 3) + 3
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    fr = torch.outer(torch.arange(T).float(), inv)
    cos = torch.cat((fr, fr), -1).cos().to(dt)
    sin = torch.cat((fr, fr), -1).sin().to(dt)
    mask = torch.full((T, T), float("-inf")).triu(1).to(dt)
    F = torch.nn.functional

    def forward():
        x = emb[ids]
        for L in layers:
            h = rms_norm(x, L["an"])
            q = F.linear(h, L["q"]).view(T, n_head, hd).transpose(0, 1)
            k = F.linear(h, L["k"]).view(T, n_kv, hd).transpose(0, 1)
            v = F.linear(h, L["v"]).view(T, n_kv, hd).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(n_head // n_kv, 0)
            v = v.repeat_interleave(n_head // n_kv, 0)
            s = torch.matmul(q, k.transpose(1, 2)) / hd ** 0.5 + mask
            p = torch.softmax(s.float(), -1).to(dt)
            o = torch.matmul(p, v).transpose(0, 1).reshape(T, n_head * hd)
            x = x + F.linear(o, L["o"])
            h = rms_norm(x, L["fn"])
            x = x + F.linear(F.silu(F.linear(h, L["g"])) * F.linear(h, L["u"]), L["dn"])
        x = rms_norm(x, norm)
        return F.linear(x[-1:], head)

    with torch.inference_mode():
        forward()  # warm-up: first-touch of the weights, allocator
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            forward()
            print("prefill_tps=%.2f" % (T / (time.perf_counter() - t0)), flush=True)


if __name__ == "__main__":
    main()
