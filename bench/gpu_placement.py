"""Placement on a real GPU, in seconds (run by bench/gpu_check.sh before the benchmark; also runs on a CPU).

Checks what can only be seen with a GPU: `load_model` puts 16-bit and 4-bit models on this process's GPU, 16-bit in
bf16 (`compute_dtype`) or in the checkpoint's own dtype (`dtype='auto'`); `load_finetuned` and the export's merge run
there too, and a bf16 base is merged and saved in bf16. Prints one line per check and writes a JSON file."""
import json, sys, tempfile, time
from pathlib import Path

def main(out:Path):
    import torch, yaml
    from safetensors import safe_open
    from mirastral.model import device_map_for, load_model, add_lora, create_tiny_model, load_finetuned, compute_dtype
    from mirastral.export import export_model
    cuda = torch.cuda.is_available()
    dev = 'cuda:0' if cuda else 'cpu'
    res, t0 = {}, time.perf_counter()
    def check(name, got, want):
        res[name] = {'got': str(got), 'want': str(want), 'ok': str(got) == str(want)}
        print(f"{'ok  ' if res[name]['ok'] else 'FAIL'} {name}: {got} (want {want})", flush=True)
    check('device_map', device_map_for(), {'': 0} if cuda else None)
    m = load_model()
    check('16-bit load: device', m.device, dev)
    check('16-bit load: dtype', m.dtype, compute_dtype())
    check("16-bit load, dtype='auto': dtype", load_model(dtype='auto').dtype, torch.float32)
    q = load_model(load_in_4bit=True)
    check('4-bit load: device', q.device, dev)
    w = Path(tempfile.mkdtemp(prefix='mirastral-placement-'))
    load_model(str(create_tiny_model())).to(torch.bfloat16).save_pretrained(w/'base16')
    lm = add_lora(load_model(str(w/'base16'), dtype='auto'), r=4, alpha=8, gradient_checkpointing=False, verbose=False)
    with torch.no_grad():
        for n, p in lm.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.02)
    lm.save_pretrained(w/'run'/'final_model')
    (w/'run'/'final_model'/'config.yaml').write_text(yaml.safe_dump({'model_name_or_path': str(w/'base16')}))
    del lm
    ft = load_finetuned(w/'run', dtype='auto')
    check('load_finetuned (merged): device', ft.device, dev)
    check('load_finetuned (merged): dtype', ft.dtype, torch.bfloat16)
    info = export_model(w/'run', w/'export', check_tokens=12)
    check('export merge: device', info['device'], dev)
    check('export merge: dtype', info['dtype'], 'bfloat16')
    with safe_open(str(w/'export'/'model.safetensors'), 'pt') as f:
        check('export saved dtype', f.get_tensor('lm_head.weight').dtype, torch.bfloat16)
    check('export reload check', info['check']['same_tokens'], True)
    res['merge_next_token_agreement'] = info['check']['merge_next_token_agreement']
    res['seconds'] = round(time.perf_counter() - t0, 1)
    out.write_text(json.dumps(res, indent=2) + '\n')
    bad = [k for k, v in res.items() if isinstance(v, dict) and not v['ok']]
    print(f"placement: {len(bad)} failed of {sum(isinstance(v, dict) for v in res.values())} checks "
          f"({res['seconds']} s){': ' + ', '.join(bad) if bad else ''}")
    return 1 if bad else 0

if __name__ == '__main__': sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else 'placement.json')))
