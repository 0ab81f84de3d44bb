"""Checks that a folder Kiln wrote (`kiln lm train --hf-out DIR` or `Llama::save_hf`) loads in
Hugging Face `transformers` and computes what Kiln computes: the mean next-token cross-entropy
over the consecutive windows of a u16 token file, as `kiln lm eval --json` reports it.

    /tmp/tv/bin/python tests/golden/check_hf_export.py DIR TOKENS.bin CONTEXT KILN_LOSS

Exits non-zero when the two differ by more than 1e-5 relative. Not run in CI (no torch there).
"""

import sys

import numpy as np
import torch
from transformers import LlamaForCausalLM


def main(folder, tokens_path, context, kiln_loss):
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    ids = torch.from_numpy(np.fromfile(tokens_path, dtype="<u2").astype(np.int64))
    t = int(context)
    n = (len(ids) - 1) // t
    x = torch.stack([ids[k * t:k * t + t] for k in range(n)])
    y = torch.stack([ids[k * t + 1:k * t + t + 1] for k in range(n)])
    with torch.no_grad():
        logits = model(input_ids=x).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
    rel = abs(loss - float(kiln_loss)) / loss
    print(f"transformers {loss:.7f}, kiln {float(kiln_loss):.7f}, relative difference {rel:.2e}")
    return 0 if rel < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
