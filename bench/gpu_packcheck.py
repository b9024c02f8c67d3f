"""Packed rows attend only within their own example, on the GPU too: logits of three examples packed in one row
(position ids restarting at 0, no attention mask, use_cache=False, as MiraStral's PackedCollator sends them) against
each example run alone, for `sdpa` and `packed_sdpa`, in bf16 and fp32; and the same row read as one long sequence
(no position ids), which must differ. Run on a GPU node: `python bench/gpu_packcheck.py` (a few seconds).
Figures from an H100 (2026-11-26) are in bench/RESULTS.md."""
import torch, mirastral.model as mm
from transformers import AutoModelForCausalLM
torch.manual_seed(0)
p = mm.create_tiny_model()
for attn in ('sdpa', 'packed_sdpa'):
    for dt in (torch.bfloat16, torch.float32):
        m = AutoModelForCausalLM.from_pretrained(p, dtype=dt, attn_implementation=attn).cuda().eval()
        lens = [50, 70, 40]
        ids = [torch.randint(5, 30000, (n,), device='cuda') for n in lens]
        with torch.no_grad():
            alone = torch.cat([m(input_ids=x[None], use_cache=False).logits[0] for x in ids])
            pos = torch.cat([torch.arange(n, device='cuda') for n in lens])[None]
            packed = m(input_ids=torch.cat(ids)[None], position_ids=pos, use_cache=False).logits[0]
            leak = m(input_ids=torch.cat(ids)[None], use_cache=False).logits[0]  # no position ids: one long sequence
        print(f"{attn:12} {str(dt):15} packed vs alone max|diff| {(packed - alone).abs().max().item():.4g}; "
              f"one-sequence vs alone {(leak - alone).abs().max().item():.4g}", flush=True)
