#!/usr/bin/env python
"""End-to-end latency of two published text-to-audio peers, AudioLDM-S (cvssp/audioldm-s-full-v2)
and Stable Audio Open 1.0, built at their published architectures with random weights (speed does
not depend on the weights), so that one GPU session can time them next to benchmarks/latency.py.

    python benchmarks/peers.py --device cuda                          # both peers, eager + compiled
    python benchmarks/peers.py --device cuda --peers audioldm-s --steps 200 10 --batches 1 8
    python benchmarks/peers.py --device cpu --tiny --steps 2 --batches 1 --duration-s 1
    python benchmarks/peers.py --params-only                          # parameter counts, no forward

Each peer runs end to end: its text encoder on random token ids, the denoiser loop with
classifier-free guidance as ONE batched forward of 2B items per step, the latent decode and the
vocoder where the peer has one. Components come from ``diffusers`` / ``transformers`` classes at
configurations written out below (nothing is downloaded; ``pip install -e .[bench]``):

* AudioLDM-S: CLAP text branch (``ClapTextModelWithProjection``, RoBERTa-base + 512-d projection,
  prompt and empty negative prompt padded to 512 tokens as the diffusers pipeline does), the UNet
  (``UNet2DConditionModel``, widths 128/256/384/640, cross-attention blocks at the three coarser
  levels, conditioned through a 512-d FiLM class embedding concatenated to the time embedding, no
  encoder states: its "cross" attention attends to itself), the KL VAE (``AutoencoderKL``, 4x
  down-sampling to an 8 x T/4 x 16 latent) and HiFi-GAN (``SpeechT5HifiGan``, 64 mels, 16 kHz,
  hop 160). 10.24 s = 1024 mel frames. Default steps 200 (the original's) and 10.
* Stable Audio Open 1.0: T5-base encoder (``T5EncoderModel``, 128 tokens; the unconditional
  branch is zeros, as in the pipeline), the seconds-start/total projection
  (``StableAudioProjectionModel``), the DiT (``StableAudioDiTModel``, 24 layers, 1536 wide) and the
  Oobleck VAE decoder (``AutoencoderOobleck``, stereo 44.1 kHz, hop 2048). The published pipeline
  always denoises the model's full window (``sample_size`` = 1024 latents, 47.5 s) and crops the
  waveform, so a 10 s clip costs as much as 47 s: ``--sao-latent window`` (default) times that;
  ``--sao-latent duration`` times only ceil(seconds * 44100 / 2048) latents, a lower bound that the
  published model is not trained for. Default steps 100 and 10.

Scheduler: plain deterministic loops written here, whose cost is negligible next to the
forwards: DDIM (eta 0, epsilon prediction, AudioLDM's scaled-linear betas 0.0015..0.0195 over 1000
steps) for AudioLDM-S; for Stable Audio Open an Euler (DDIM-equivalent) step on the probability-flow
ODE over an exponential sigma schedule 500 -> 0.3 with its v-prediction preconditioning
(sigma_data 1). Guidance 2.5 and 7 (the pipelines' defaults); the value does not change the cost.

Variants: ``eager`` (fp16 on CUDA, fp32 on the CPU) and ``compiled`` (the same with the denoiser
under ``torch.compile(mode="reduce-overhead")`` on CUDA, i.e. CUDA graphs; on the CPU plain
``torch.compile``, only when asked). Each row has the median end-to-end seconds and the median
split into text / denoise / decode (+ vocoder). ``--tiny`` builds tiny widths and depths of the
same architectures for tests and smoke runs. Writes ``<out>/peers-<device>.json`` and ``.md``.
Other scripts can call ``run_peers([...args])`` and get the JSON payload back.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import DEFAULT_OUT, machine_info, machine_line, markdown_table, write_results  # noqa: E402

PEERS = ("audioldm-s", "stable-audio-open")
DEFAULT_STEPS = {"audioldm-s": (200, 10), "stable-audio-open": (100, 10)}
DEFAULT_DURATION = {"audioldm-s": 10.24, "stable-audio-open": 10.0}
VARIANTS = ("eager", "compiled")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Configurations. Published values were read from the released config.json files
# (cvssp/audioldm-*, stabilityai/stable-audio-open-1.0) and diffusers' AudioLDM conversion script.
# --------------------------------------------------------------------------------------------

def audioldm_configs(tiny: bool) -> dict:
    if not tiny:
        widths = (128, 256, 384, 640)
        return {
            "clap": dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                         projection_dim=512, projection_hidden_act="relu", layer_norm_eps=1e-12,
                         pad_token_id=1, bos_token_id=0, eos_token_id=2),
            "text_tokens": 512,  # the pipeline pads to the CLAP tokenizer's model_max_length
            "unet": dict(sample_size=128, in_channels=8, out_channels=8, layers_per_block=2,
                         block_out_channels=widths,
                         down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                           "CrossAttnDownBlock2D"),
                         up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                         "UpBlock2D"),
                         cross_attention_dim=widths, attention_head_dim=8,
                         class_embed_type="simple_projection", projection_class_embeddings_input_dim=512,
                         class_embeddings_concat=True),
            "vae": dict(in_channels=1, out_channels=1, latent_channels=8, layers_per_block=2,
                        block_out_channels=(128, 256, 512), down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, sample_size=512),
            "vocoder": dict(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024,
                            upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                            resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                            normalize_before=False),
        }
    widths = (16, 32, 32, 48)
    return {
        "clap": dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=514, type_vocab_size=1, projection_dim=32,
                     projection_hidden_act="relu", pad_token_id=1, bos_token_id=0, eos_token_id=2),
        "text_tokens": 16,
        "unet": dict(sample_size=32, in_channels=8, out_channels=8, layers_per_block=1, block_out_channels=widths,
                     down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                       "CrossAttnDownBlock2D"),
                     up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                     cross_attention_dim=widths, attention_head_dim=2, norm_num_groups=8,
                     class_embed_type="simple_projection", projection_class_embeddings_input_dim=32,
                     class_embeddings_concat=True),
        "vae": dict(in_channels=1, out_channels=1, latent_channels=8, layers_per_block=1,
                    block_out_channels=(16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
                    up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8, sample_size=64),
        "vocoder": dict(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=32,
                        upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                        resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                        normalize_before=False),
    }


def sao_configs(tiny: bool) -> dict:
    if not tiny:
        return {
            # t5-base
            "t5": dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                       feed_forward_proj="relu", relative_attention_num_buckets=32),
            "text_tokens": 128,
            "projection": dict(text_encoder_dim=768, conditioning_dim=768, min_value=0, max_value=512),
            # StableAudioDiTModel / AutoencoderOobleck defaults are the published configs; spelled out.
            "dit": dict(sample_size=1024, in_channels=64, num_layers=24, attention_head_dim=64,
                        num_attention_heads=24, num_key_value_attention_heads=12, out_channels=64,
                        cross_attention_dim=768, time_proj_dim=256, global_states_input_dim=1536,
                        cross_attention_input_dim=768),
            "vae": dict(encoder_hidden_size=128, downsampling_ratios=[2, 4, 4, 8, 8],
                        channel_multiples=[1, 2, 4, 8, 16], decoder_channels=128, decoder_input_channels=64,
                        audio_channels=2, sampling_rate=44100),
        }
    return {
        "t5": dict(vocab_size=1000, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                   feed_forward_proj="relu", relative_attention_num_buckets=8),
        "text_tokens": 16,
        "projection": dict(text_encoder_dim=32, conditioning_dim=32, min_value=0, max_value=512),
        "dit": dict(sample_size=64, in_channels=16, num_layers=2, attention_head_dim=16, num_attention_heads=2,
                    num_key_value_attention_heads=1, out_channels=16, cross_attention_dim=32, time_proj_dim=16,
                    global_states_input_dim=64, cross_attention_input_dim=32),
        "vae": dict(encoder_hidden_size=8, downsampling_ratios=[2, 4, 4, 8, 8], channel_multiples=[1, 2, 4, 8, 16],
                    decoder_channels=8, decoder_input_channels=16, audio_channels=2, sampling_rate=44100),
    }


def build_components(peer: str, tiny: bool) -> dict[str, nn.Module]:
    """The peer's modules at random weights, created on the current default device."""
    import diffusers
    import transformers

    if peer == "audioldm-s":
        cfg = audioldm_configs(tiny)
        return {
            "text": transformers.ClapTextModelWithProjection(transformers.ClapTextConfig(**cfg["clap"])),
            "denoiser": diffusers.UNet2DConditionModel(**cfg["unet"]),
            "vae": diffusers.AutoencoderKL(**cfg["vae"]),
            "vocoder": transformers.SpeechT5HifiGan(transformers.SpeechT5HifiGanConfig(**cfg["vocoder"])),
        }
    if peer == "stable-audio-open":
        from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

        cfg = sao_configs(tiny)
        return {
            "text": transformers.T5EncoderModel(transformers.T5Config(**cfg["t5"])),
            "projection": StableAudioProjectionModel(**cfg["projection"]),
            "denoiser": diffusers.StableAudioDiTModel(**cfg["dit"]),
            "vae": diffusers.AutoencoderOobleck(**cfg["vae"]),
        }
    raise ValueError(f"unknown peer {peer!r}; choose from {PEERS}")


def param_counts(peer: str, tiny: bool, device: str | torch.device = "meta") -> dict[str, int]:
    """Parameters per component; on the meta device nothing is allocated or initialised."""
    with torch.device(device):
        comps = build_components(peer, tiny)
    return {name: count_params(m) for name, m in comps.items()}


# --------------------------------------------------------------------------------------------
# Pipelines
# --------------------------------------------------------------------------------------------

class PeerPipeline:
    """A peer's compute, stage by stage: ``run`` returns the seconds of each stage."""

    guidance = 3.0

    def __init__(self, comps: dict[str, nn.Module], device: torch.device, dtype: torch.dtype, tiny: bool):
        self.device, self.dtype, self.tiny = device, dtype, tiny
        self.comps = {k: m.to(device, dtype).eval().requires_grad_(False) for k, m in comps.items()}
        self.params = {k: count_params(m) for k, m in self.comps.items()}
        self.compiled = False
        self.eager()

    def eager(self) -> None:
        self.net, self.compiled = self.comps["denoiser"], False

    def compile(self, mode: str | None) -> None:
        self.net, self.compiled = torch.compile(self.comps["denoiser"], mode=mode, dynamic=False), True

    def step_begin(self) -> None:
        if self.compiled:  # a new CUDA-graph step: the previous forward's output is consumed
            torch.compiler.cudagraph_mark_step_begin()

    @torch.inference_mode()
    def run(self, batch: int, duration_s: float, steps: int) -> dict[str, float]:
        dev = self.device
        sync(dev)
        t0 = time.perf_counter()
        ctx = self.encode(batch, duration_s)
        sync(dev)
        t1 = time.perf_counter()
        latents = self.denoise(ctx, batch, duration_s, steps)
        sync(dev)
        t2 = time.perf_counter()
        wav = self.decode(latents, duration_s)
        sync(dev)
        t3 = time.perf_counter()
        assert wav.shape[0] == batch, wav.shape
        # random fp16 weights may overflow; the speed does not depend on it, but the record says so
        self.finite = bool(torch.isfinite(wav).all())
        return {"total_s": t3 - t0, "text_s": t1 - t0, "denoise_s": t2 - t1, "decode_s": t3 - t2}

    def cfg(self, out: torch.Tensor) -> torch.Tensor:
        uncond, cond = out.float().chunk(2)
        return uncond + self.guidance * (cond - uncond)


class AudioLDMS(PeerPipeline):
    guidance = 2.5
    sr, hop, n_mels, vae_factor = 16000, 160, 64, 4

    def __init__(self, comps, device, dtype, tiny):
        super().__init__(comps, device, dtype, tiny)
        self.tokens = audioldm_configs(tiny)["text_tokens"]
        self.vocab = self.comps["text"].config.vocab_size
        betas = torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)

    def latent_shape(self, duration_s: float) -> tuple[int, ...]:
        """Per item: 8 x mel frames / 4 x 64 mels / 4 (frames rounded up to the VAE's factor)."""
        frames = math.ceil(round(duration_s * self.sr / self.hop, 6) / self.vae_factor) * self.vae_factor
        return (8, frames // self.vae_factor, self.n_mels // self.vae_factor)

    def encode(self, batch: int, duration_s: float):
        # prompt and empty negative prompt, each padded to the tokenizer's max length, in one forward
        ids = torch.randint(3, self.vocab, (2 * batch, self.tokens), device=self.device)
        mask = torch.ones_like(ids)
        emb = self.comps["text"](input_ids=ids, attention_mask=mask).text_embeds
        emb = nn.functional.normalize(emb.float(), dim=-1)
        uncond, cond = emb.chunk(2)
        return torch.cat([uncond, cond]).to(self.dtype)

    def timesteps(self, steps: int) -> list[int]:
        stride = max(1000 // steps, 1)
        return [min(i * stride + 1, 999) for i in reversed(range(min(steps, 1000)))]  # steps_offset 1

    def denoise(self, emb: torch.Tensor, batch: int, duration_s: float, steps: int) -> torch.Tensor:
        x = torch.randn(batch, *self.latent_shape(duration_s), device=self.device)
        ts = self.timesteps(steps)
        ac = self.alphas_cumprod
        for i, t in enumerate(ts):
            a_t = float(ac[t])
            a_prev = float(ac[ts[i + 1]]) if i + 1 < len(ts) else float(ac[0])  # set_alpha_to_one False
            inp = torch.cat([x, x]).to(self.dtype)
            tt = torch.full((2 * batch,), t, device=self.device, dtype=torch.long)
            self.step_begin()
            out = self.net(inp, tt, encoder_hidden_states=None, class_labels=emb, return_dict=False)[0]
            eps = self.cfg(out)
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
            x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        return x

    def decode(self, latents: torch.Tensor, duration_s: float) -> torch.Tensor:
        vae = self.comps["vae"]
        mel = vae.decode((latents / vae.config.scaling_factor).to(self.dtype)).sample  # (B, 1, frames, 64)
        wav = self.comps["vocoder"](mel[:, 0])  # (B, frames * 160)
        return wav[:, : round(duration_s * self.sr)]


class StableAudioOpen(PeerPipeline):
    guidance = 7.0
    sigma_min, sigma_max, sigma_data = 0.3, 500.0, 1.0

    def __init__(self, comps, device, dtype, tiny, latent_mode: str = "window"):
        super().__init__(comps, device, dtype, tiny)
        cfg = sao_configs(tiny)
        self.tokens = cfg["text_tokens"]
        self.vocab = self.comps["text"].config.vocab_size
        self.latent_mode = latent_mode
        dit, vae = self.comps["denoiser"].config, self.comps["vae"]
        self.window = int(dit.sample_size)
        self.channels = int(dit.in_channels)
        self.rotary_dim = int(dit.attention_head_dim) // 2
        self.hop, self.sr = int(vae.hop_length), int(vae.config.sampling_rate)

    def latent_shape(self, duration_s: float) -> tuple[int, ...]:
        """Per item: 64 channels x the full window, or x ceil(seconds * 44100 / 2048)."""
        n = self.window if self.latent_mode == "window" else math.ceil(round(duration_s * self.sr / self.hop, 6))
        return (self.channels, n)

    def encode(self, batch: int, duration_s: float):
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        ids = torch.randint(2, self.vocab, (batch, self.tokens), device=self.device)
        hidden = self.comps["text"](input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        proj = self.comps["projection"]
        start = torch.zeros(batch, device=self.device)
        end = torch.full((batch,), float(duration_s), device=self.device)
        out = proj(text_hidden_states=hidden, start_seconds=start, end_seconds=end)
        tokens = torch.cat([out.text_hidden_states, out.seconds_start_hidden_states,
                            out.seconds_end_hidden_states], dim=1)
        glob = torch.cat([out.seconds_start_hidden_states, out.seconds_end_hidden_states], dim=2)
        # no negative prompt: the unconditional branch is zeros, the global (timing) states repeat
        tokens = torch.cat([torch.zeros_like(tokens), tokens]).to(self.dtype)
        glob = torch.cat([glob, glob]).to(self.dtype)
        n = self.latent_shape(duration_s)[1]
        rotary = get_1d_rotary_pos_embed(self.rotary_dim, n + 1, use_real=True, repeat_interleave_real=False)
        rotary = tuple(r.to(self.device) for r in rotary)
        return tokens, glob, rotary

    def sigmas(self, steps: int) -> list[float]:
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        s = [math.exp(hi + (lo - hi) * i / max(steps - 1, 1)) for i in range(steps)]
        return s + [0.0]

    def denoise(self, ctx, batch: int, duration_s: float, steps: int) -> torch.Tensor:
        tokens, glob, rotary = ctx
        sd = self.sigma_data
        sig = self.sigmas(steps)
        x = torch.randn(batch, *self.latent_shape(duration_s), device=self.device) * sig[0]
        for s, s_next in zip(sig[:-1], sig[1:]):
            c_in = 1 / (s * s + sd * sd) ** 0.5
            c_skip = sd * sd / (s * s + sd * sd)
            c_out = -s * sd / (s * s + sd * sd) ** 0.5  # v-prediction
            c_noise = torch.full((1,), math.atan(s) / math.pi * 2, device=self.device, dtype=self.dtype)
            inp = (torch.cat([x, x]) * c_in).to(self.dtype)
            self.step_begin()
            out = self.net(inp, c_noise, encoder_hidden_states=tokens, global_hidden_states=glob,
                           rotary_embedding=rotary, return_dict=False)[0]
            denoised = c_skip * x + c_out * self.cfg(out)
            x = x + (s_next - s) * (x - denoised) / s  # Euler = DDIM on the probability-flow ODE
        return x

    def decode(self, latents: torch.Tensor, duration_s: float) -> torch.Tensor:
        wav = self.comps["vae"].decode(latents.to(self.dtype)).sample  # (B, 2, n * 2048)
        return wav[..., : round(duration_s * self.sr)]


def build_pipeline(peer: str, device: torch.device, dtype: torch.dtype, args) -> PeerPipeline:
    try:  # create the weights where they will live: initialising 1B parameters on a CPU is slow
        with torch.device(device):
            comps = build_components(peer, args.tiny)
    except Exception:
        comps = build_components(peer, args.tiny)
    if peer == "audioldm-s":
        return AudioLDMS(comps, device, dtype, args.tiny)
    return StableAudioOpen(comps, device, dtype, args.tiny, latent_mode=args.sao_latent)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    p.add_argument("--variants", nargs="+", default=None, choices=VARIANTS,
                   help="eager compiled (default: both on CUDA, eager on the CPU)")
    p.add_argument("--steps", nargs="+", type=int, default=None,
                   help="denoiser steps (default: each peer's own default, then 10)")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--duration-s", type=float, default=None,
                   help="seconds of audio (default: 10.24 for AudioLDM-S, 10 for Stable Audio Open)")
    p.add_argument("--sao-latent", choices=("window", "duration"), default="window",
                   help="Stable Audio Open latent length: the model's full window as published "
                        "(default) or just the requested duration")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.add_argument("--max-seconds", type=float, default=0, help="stop adding rows after this long (0 = no cap)")
    p.add_argument("--tiny", action="store_true", help="tiny widths/depths of the same architectures")
    p.add_argument("--params-only", action="store_true",
                   help="print the parameter counts (built on the meta device) and exit")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    return p.parse_args(argv)


def run_peers(argv: list[str] | None = None) -> dict:
    """Run the benchmark with command-line style arguments; write the results and return the payload."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.params_only:
        counts = {peer: param_counts(peer, args.tiny) for peer in args.peers}
        for peer, c in counts.items():
            print(f"{peer}: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in c.items())
                  + f"; total {sum(c.values()) / 1e6:.1f}M", flush=True)
        return {"params": counts}

    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()  # "modules that should be kept in float32: []" per .to()
    device = torch.device(args.device)
    variants = args.variants or (list(VARIANTS) if device.type == "cuda" else ["eager"])
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    info = machine_info(device)
    info.update(diffusers=diffusers.__version__, transformers=transformers.__version__)
    started = time.perf_counter()
    records: list[dict] = []
    errors: dict[str, str] = {}
    params: dict[str, dict[str, int]] = {}
    pipes: dict[str, PeerPipeline] = {}
    state = {"quiet": True}

    def report() -> dict:
        """Write what we have (after every row too: a run killed by a time limit keeps its rows)."""
        payload = {"machine": info, "tiny": args.tiny, "dtype": str(dtype).replace("torch.", ""),
                   "sao_latent": args.sao_latent, "params": params, "records": records, "errors": errors}
        md = markdown_report(info, args, dtype, params, records, errors)
        json_path, md_path = write_results(f"peers-{device.type}", payload, md, args.out)
        if not state["quiet"]:
            print(md)
            print(f"wrote {json_path} and {md_path}")
        return payload

    for variant in variants:  # eager rows of every peer first: under --max-seconds they matter most
        for peer in args.peers:
            if args.max_seconds and time.perf_counter() - started > args.max_seconds:
                break
            key = f"{peer}/{variant}"
            try:
                if peer not in pipes:
                    t0 = time.perf_counter()
                    pipes[peer] = build_pipeline(peer, device, dtype, args)
                    params[peer] = pipes[peer].params
                    print(f"{peer}: built in {time.perf_counter() - t0:.1f} s; "
                          + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in params[peer].items()), flush=True)
                pipe = pipes[peer]
                if variant == "compiled":
                    pipe.compile("reduce-overhead" if device.type == "cuda" else None)
                run_rows(pipe, peer, variant, args, device, started, records, errors, report)
            except Exception as err:  # one failing peer / variant must not lose the other rows
                errors[key] = f"{type(err).__name__}: {err}"
                print(f"{key}: failed: {errors[key]}", flush=True)
            finally:
                if peer in pipes:
                    pipes[peer].eager()
                if variant == "compiled":
                    torch._dynamo.reset()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    state["quiet"] = False
    return report()


def markdown_report(info: dict, args, dtype: torch.dtype, params: dict, records: list, errors: dict) -> str:
    rows = [[r["peer"], r["variant"], r["steps"], r["duration_s"], r["batch"], round(r["median_s"], 3),
             round(r["x_real_time"], 2), round(r["text_s"], 3), round(r["denoise_s"], 3), round(r["decode_s"], 3)]
            for r in records]
    return (f"# Latency of peer text-to-audio models (random weights, published architectures)\n\n"
            f"{machine_line(info)}; diffusers {info['diffusers']}, transformers {info['transformers']}; "
            f"{'TINY configs; ' if args.tiny else ''}{'fp16' if dtype == torch.float16 else 'fp32'}; "
            f"classifier-free guidance as one batched forward of 2B per step; Stable Audio Open latent: "
            f"{args.sao_latent}.\n\n"
            + markdown_table(["peer", "variant", "steps", "audio s", "batch", "median s", "x real time",
                              "text s", "denoise s", "decode+vocoder s"], rows) + "\n\n"
            + "".join(f"{peer} parameters: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in c.items())
                      + f" (total {sum(c.values()) / 1e6:.1f}M)\n\n" for peer, c in params.items())
            + "".join(f"{k} failed: {e}\n\n" for k, e in errors.items()))


def run_rows(pipe: PeerPipeline, peer: str, variant: str, args, device: torch.device, started: float,
             records: list, errors: dict, report=None) -> None:
    steps_list = args.steps or list(DEFAULT_STEPS[peer])
    duration = args.duration_s if args.duration_s is not None else DEFAULT_DURATION[peer]
    for steps in steps_list:
        for batch in args.batches:
            if args.max_seconds and time.perf_counter() - started > args.max_seconds:
                return
            try:
                pipe.run(batch, duration, steps)  # warm-up (and compilation / graph capture)
                runs = [pipe.run(batch, duration, steps) for _ in range(args.repeats)]
            except torch.OutOfMemoryError:
                errors[f"{peer}/{variant}/steps{steps}/batch{batch}"] = "out of memory"
                print(f"{peer} {variant} steps {steps} x{batch}: out of memory", flush=True)
                torch.cuda.empty_cache()
                continue
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            rec = {"peer": peer, "variant": variant, "steps": steps, "duration_s": duration, "batch": batch,
                   "latent_shape": list(pipe.latent_shape(duration)), "median_s": med["total_s"],
                   "times_s": [r["total_s"] for r in runs], "text_s": med["text_s"],
                   "denoise_s": med["denoise_s"], "decode_s": med["decode_s"],
                   "x_real_time": batch * duration / med["total_s"], "finite_output": pipe.finite}
            records.append(rec)
            if report is not None:
                report()
            print(f"{peer:>17} {variant:>8} steps {steps:3d} {duration:5.2f} s x{batch:<3d} "
                  f"{med['total_s']:8.3f} s {rec['x_real_time']:8.2f}x real time  (text {med['text_s']:.3f}, "
                  f"denoise {med['denoise_s']:.3f}, decode {med['decode_s']:.3f})", flush=True)


def main(argv: list[str] | None = None) -> dict:
    return run_peers(argv)


if __name__ == "__main__":
    main()
