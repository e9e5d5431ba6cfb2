"""A tiny, random, deterministic Stable-Diffusion-shaped pipeline for tests and the demo.

``--base tiny`` builds it in-process from the configs below: a UNet2DConditionModel, an
AutoencoderKL and a CLIPTextModel of a few hundred thousand parameters each, with a CLIP BPE
tokenizer whose vocabulary and merges are generated from the words of the project's prompts.
Nothing is downloaded. It is random (it draws noise-like images, not ultrasound); it exists so
that every code path of the generators (LoRA training, checkpoints, saving, reloading,
sampling, dataset writing) runs anywhere in seconds.

Determinism: each module is initialised inside :func:`torch.random.fork_rng` after
``torch.manual_seed(TINY_SEED + k)``, so building it never disturbs the caller's RNG and gives
the same weights on every call; :func:`tiny_identity` hashes those weights, which is how a LoRA
trained on ``tiny`` checks at sampling time that it is applied to the same base.

Why a generated BPE vocabulary: ``transformers`` 5 builds ``CLIPTokenizer`` from ``vocab=`` and
``merges=`` objects (and ignores ``vocab_file=``), so a vocabulary is passed as data. Every
character is a token, and for each known word the merges build it left to right, so the
project's prompts tokenize into whole words while any other text still tokenizes (by letters).
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fetal_bench._io import sha256_tensors

if TYPE_CHECKING:  # torch/diffusers/transformers are heavy; imported where used
    import torch

__all__ = [
    "TINY_RESOLUTION",
    "TINY_SEED",
    "TinyComponents",
    "build_tiny_components",
    "build_tiny_tokenizer",
    "tiny_identity",
]

TINY_SEED = 20240501
#: Image side of the tiny pipeline (the VAE downsamples by 4, so latents are 16 x 16).
TINY_RESOLUTION = 64
_TINY_VERSION = 1  # bump when anything below changes what `tiny` builds

# The words of every prompt fetal-bench uses (FU-LoRA classes, trimester prompts, phantom
# classes); merges make each one a single token.
_WORDS = (
    "a an the of photo image ultrasound fetal fetus maternal head abdomen brain femur thorax "
    "cervix other trimester first second third standard plane planes an"
).split()

UNET_CONFIG: dict[str, Any] = {
    "sample_size": TINY_RESOLUTION // 4,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [32, 64],
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [16, 32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": TINY_RESOLUTION,
}
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,  # >= 2 so that clip-skip 2 (the penultimate layer) exists
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "layer_norm_eps": 1e-5,
}
# Stable Diffusion v1's training noise schedule (scaled-linear betas), so schedulers built from
# this config behave as they do on SD 1.5.
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def _apply_bpe(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Merge adjacent pieces as BPE does: always the pair with the lowest merge rank first."""
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        known = [(rank, i) for rank, i in pairs if rank is not None]
        if not known:
            break
        _, i = min(known)
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2 :]
    return pieces


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    chars = string.ascii_lowercase + string.digits + ",.-'|/()"
    tokens: list[str] = list(chars) + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []  # the tokenizers backend takes merges as pairs
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(_WORDS):  # ordered, unique
        # Earlier merges keep priority over later ones, so a word's own chain must build on
        # whatever the existing merges already make of it: apply them, then append one merge
        # of the first two pieces, until the word is one token.
        pieces = _apply_bpe(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            if pair[0] + pair[1] not in tokens:
                tokens.append(pair[0] + pair[1])
            pieces = _apply_bpe(pieces, ranks)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tiny_tokenizer():
    """The tiny CLIP tokenizer (BPE from a generated vocabulary; see the module docstring)."""
    from transformers import CLIPTokenizer

    vocab, merges = _vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


@dataclass
class TinyComponents:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any


def _seeded(offset: int, factory):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + offset)
        return factory()


def build_tiny_components() -> TinyComponents:
    """Fresh tiny UNet, VAE, text encoder, tokenizer and DDPM scheduler (same weights every call)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tiny_tokenizer()
    vocab = tokenizer.get_vocab()
    text_config = CLIPTextConfig(
        **TEXT_CONFIG,
        vocab_size=len(vocab),
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    unet = _seeded(0, lambda: UNet2DConditionModel(**UNET_CONFIG))
    vae = _seeded(1, lambda: AutoencoderKL(**VAE_CONFIG))
    text_encoder = _seeded(2, lambda: CLIPTextModel(text_config))
    for module in (unet, vae, text_encoder):
        module.eval()
    scheduler = DDPMScheduler.from_config(SCHEDULER_CONFIG)  # from_config ignores keys it lacks
    return TinyComponents(unet, vae, text_encoder, tokenizer, scheduler)


def _state_hash(modules: dict[str, torch.nn.Module]) -> str:
    return sha256_tensors((f"{prefix}.{name}", tensor) for prefix, module in sorted(modules.items())
                          for name, tensor in sorted(module.state_dict().items()))


def tiny_identity(components: TinyComponents | None = None) -> dict[str, Any]:
    """What identifies the tiny base: its configs' hash and its weights' hash."""
    c = components or build_tiny_components()
    vocab, merges = _vocab_and_merges()
    configs = {
        "version": _TINY_VERSION,
        "seed": TINY_SEED,
        "unet": UNET_CONFIG,
        "vae": VAE_CONFIG,
        "text": TEXT_CONFIG,
        "scheduler": SCHEDULER_CONFIG,
        "vocab": vocab,
        "merges": merges,
    }
    config_hash = hashlib.sha256(json.dumps(configs, sort_keys=True).encode()).hexdigest()
    weights_hash = _state_hash({"unet": c.unet, "vae": c.vae, "text_encoder": c.text_encoder})
    return {"kind": "tiny", "id": "tiny", "revision": f"tiny-v{_TINY_VERSION}",
            "config_sha256": config_hash, "weights_sha256": weights_hash}
