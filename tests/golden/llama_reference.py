"""Golden files for Kiln's Llama decoder, made with Hugging Face `transformers` (the reference).

Builds a tiny random `LlamaForCausalLM` (grouped-query attention, SwiGLU, RMSNorm, rotary
embeddings, tied embeddings, no biases: the SmolLM2 architecture at toy size), saves it as
`transformers` saves any model (`tiny_llama/config.json` + `tiny_llama/model.safetensors`), and
records for fixed tokens its logits, its loss and the gradient of the loss for every parameter
(`tiny_llama_golden.safetensors`). Kiln's tests load the saved model with its Hugging Face loader
and must match these numbers to float32 tolerance.

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch transformers safetensors numpy
    /tmp/tv/bin/python tests/golden/llama_reference.py

Not run in CI (torch stays out of it); the files it writes are committed.
"""

import json
import pathlib

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "tiny_llama"


def main():
    torch.manual_seed(1234)
    config = LlamaConfig(
        vocab_size=67,
        hidden_size=48,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        initializer_range=0.2,  # larger than the default, so every term matters in the test
        bos_token_id=None,
        eos_token_id=None,  # greedy generation runs its full length
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(config).float()
    # norms start at 1 in transformers; give them random values so their gradients are tested
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
    model.train()  # no dropout in Llama; train mode for the loss path
    OUT.mkdir(exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)

    # two rows of 9 tokens: inputs are the first 8, targets the next 8 (transformers shifts)
    gen = torch.Generator().manual_seed(99)
    tokens = torch.randint(0, config.vocab_size, (2, 9), generator=gen)
    out = model(input_ids=tokens[:, :-1], labels=None)
    logits = out.logits  # [2, 8, 67]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, config.vocab_size), tokens[:, 1:].reshape(-1))
    # transformers' own loss with labels (it shifts inside) is the same number
    assert torch.allclose(model(input_ids=tokens, labels=tokens).loss, loss)
    loss.backward()

    tensors = {
        "tokens": tokens.to(torch.float32).contiguous(),
        "logits": logits.detach().contiguous(),
        "loss": loss.detach().reshape(1),
    }
    for name, p in model.named_parameters():
        tensors[f"grad.{name}"] = p.grad.detach().contiguous()
    save_file(tensors, str(HERE / "tiny_llama_golden.safetensors"))

    # greedy continuation of the first row's 8 tokens (for the key/value-cache generation test)
    with torch.no_grad():
        seq = tokens[:1, :8]
        greedy = model.generate(seq, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    meta = {
        "loss": loss.item(),
        "greedy_prompt": seq[0].tolist(),
        "greedy_continuation": greedy[0, 8:].tolist(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }
    import transformers

    meta["transformers"] = transformers.__version__
    (HERE / "tiny_llama_golden.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
