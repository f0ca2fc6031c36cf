"""benchmarks/_roofline.py (work, peaks, profile) and latency.py --profile, small, on the CPU."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _roofline  # noqa: E402


def test_work_of_a_matmul_and_a_view_is_counted_exactly():
    a, b = torch.randn(32, 48), torch.randn(48, 16)
    work = _roofline.count_work(lambda: (a @ b).t())
    assert work["flops"] == 2 * 32 * 48 * 16  # torch's FlopCounterMode
    assert work["bytes"] == (32 * 48 + 48 * 16 + 32 * 16) * 4  # the transpose is a view: nothing moved
    assert work["ops"] == 1


def test_merged_length_counts_overlaps_once():
    assert _roofline._merged_length([(0, 10), (5, 12), (20, 25), (21, 22)]) == 17
    assert _roofline._merged_length([]) == 0


def test_profile_finds_the_convolution_that_dominates():
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(4, 32, 64, 64)

    def call():
        with torch.inference_mode():
            torch.relu(conv(x))

    prof = _roofline.profile_call(call, torch.device("cpu"), repeats=2)
    assert prof["busy_s"] > 0 and prof["launches"] > 0 and len(prof["walls_s"]) == 2
    assert max(prof["kinds_s"], key=prof["kinds_s"].get) == "convolution"
    assert prof["top"][0]["kind"] == "convolution"
    peaks = _roofline.measure_peaks(torch.device("cpu"), torch.float32)
    assert peaks["tflops"] > 0 and peaks["gb_per_s"] > 0
    floor = _roofline.roofline_floor({"flops": 2e9, "bytes": 1e9}, {"tflops": 1.0, "gb_per_s": 100.0})
    assert floor == {"compute_s": 2e-3, "memory_s": 1e-2, "floor_s": 1e-2}


def _load_latency():
    spec = importlib.util.spec_from_file_location("bench_latency", ROOT / "benchmarks" / "latency.py")
    latency = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency)
    return latency


def test_latency_profile_section(tmp_path):
    latency = _load_latency()
    payload = latency.main(["--device", "cpu", "--batches", "1", "--durations", "0.5", "--steps", "2",
                            "--repeats", "1", "--threads", "1", "--guidance-interval", "0.1", "50",
                            "--profile", "fp32", "--out", str(tmp_path)])
    assert payload["errors"] == {}
    prof = json.loads((tmp_path / "latency-cpu.json").read_text())["profile"]
    assert prof["variant"] == "fp32" and prof["steps"] == 2 and prof["work"]["flops"] > 1e9
    # Nothing runs faster than its floor, but the floor's peak and the wall are timed at different
    # moments: on a 2-core machine shared with other work the peak can come out low (a CI run beside
    # an evaluation: floor 290 ms, wall 264 ms). A unit slip (ms for s, GFLOP for FLOP) is 1000x.
    assert 0 < prof["floor"]["floor_s"] < 3 * prof["wall_s"]
    assert "## Where the time goes" in (tmp_path / "latency-cpu.md").read_text()


def test_latency_times_the_bundled_defaults():
    """The timed call is the bundled model's: autoguidance (its pipeline.json default) runs a
    guide UNet of the same size on the same batches as the model, and the end margin samples
    frames past the clip that never reach the vocoder."""
    latency = _load_latency()
    assert latency.bundled_default("default_autoguidance") == 1.0
    torch.manual_seed(0)
    pipe = latency.build_pipeline("random", torch.device("cpu"), "fp32", None, 1.0, 8)
    guide = pipe.denoiser.guide.net
    assert guide is not pipe.net and guide.config == pipe.net.config
    seen = {"net": [], "guide": []}
    pipe.net.register_forward_hook(lambda m, a, o: seen["net"].append(tuple(a[0].shape)))
    guide.register_forward_hook(lambda m, a, o: seen["guide"].append(tuple(a[0].shape)))
    wav = pipe(1, 0.5, 2)
    frames = math.ceil(0.5 * 22050 / 256) + 8
    assert seen["net"] and seen["guide"] == seen["net"]
    assert all(shape[-1] == frames for shape in seen["net"])  # sampled with the margin ...
    assert wav.shape[-1] == round(0.5 * 22050)  # ... which never reaches the output
    plain = latency.build_pipeline("random", torch.device("cpu"), "fp32", None, 0.0, 0)
    assert not hasattr(plain.denoiser, "guide")


class _HostCopies(TorchDispatchMode):
    """Records the ops that take a host tensor (not a 0-d scalar) into a meta computation."""

    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if any(t.device.type == "meta" for t in outs) and any(t.device.type == "cpu" and t.dim() > 0 for t in tensors):
            self.found.append(str(func))
        return out


def test_the_whole_call_can_be_captured_as_one_cuda_graph(monkeypatch):
    """What bf16-fullgraph's capture needs, checked here without a GPU by running the whole call
    on the meta device (shapes, no data): no device value read on the host (.item(), .tolist(),
    bool(): a sync, which a capture refuses; on meta they raise) and no host-to-device copy of
    a tensor."""
    latency = _load_latency()
    enabled = torch.is_autocast_enabled  # autocast knows no meta device; nothing autocasts here
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda *a: False if a and a[0] == "meta" else enabled(*a))
    pipe = latency.Pipeline(latency.load_unet("random"), torch.device("meta"), "bf16", (0.1, 50.0),
                            autoguidance=1.0, end_margin_frames=8)  # the bundled defaults
    with _HostCopies() as copies:
        wav = pipe(2, 1.0, 4)
    assert wav.shape == (2, 1, 22050) and wav.device.type == "meta"
    assert copies.found == []
    # the check bites: a host tensor moved in, and a device value read back
    with _HostCopies() as copies:
        torch.ones(3).to("meta")  # a host-to-device copy
    assert copies.found
    with pytest.raises(RuntimeError, match="meta"):
        torch.ones(3, device="meta").sum().item()
    with pytest.raises(ValueError, match="needs --device cuda"):
        latency.build_pipeline("random", torch.device("cpu"), "bf16-fullgraph")


def test_kernel_names_fall_into_their_kinds():
    kind = _roofline.kind_of
    assert kind("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc") == "convolution"
    assert kind("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == "matmul"
    assert kind("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>") == "attention"
    assert kind("void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<float>") == "normalisation"
    assert kind("void at::native::normal_kernel<float>") == "other"  # randn, not a norm
    assert kind("aten::native_group_norm") == "normalisation"
    assert kind("void at::native::vectorized_elementwise_kernel<4, at::native::silu_kernel>") == "elementwise"
    assert kind("aten::mkldnn_convolution") == "convolution" and kind("aten::addmm") == "matmul"


def test_solver_error_falls_with_the_step_count(tmp_path):
    """benchmarks/solver_error.py on a tiny random pipeline: the deterministic samplers approach
    the many-step reference as their steps grow."""
    from audiodiff.testing import tiny_text_to_audio_pipeline

    tiny_text_to_audio_pipeline(seed=3).save_pretrained(tmp_path / "tiny")
    spec = importlib.util.spec_from_file_location("bench_solver_error", ROOT / "benchmarks" / "solver_error.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    payload = module.main(["--model", str(tmp_path / "tiny"), "--dtype", "fp32", "--threads", "1",
                           "--steps", "2", "8", "--reference-steps", "32", "--samplers", "dpmpp_2m", "euler",
                           "--prompts", "a low hum", "a click", "--duration-s", "0.5", "--out", str(tmp_path)])
    error = {(r["sampler"], r["steps"]): r["mean_error"] for r in payload["records"]}
    for sampler in ("dpmpp_2m", "euler"):
        assert error[sampler, 8] < 0.5 * error[sampler, 2]
    assert error["dpmpp_2m", 8] < error["euler", 8]  # second order beats first at equal steps
    assert payload["reference_error"] < error["dpmpp_2m", 8]
    assert "| dpmpp_2m | 8 |" in (tmp_path / "solver-error.md").read_text()
