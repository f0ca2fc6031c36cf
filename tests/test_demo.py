"""The web demo: handlers called directly, then the served app through gradio_client.

A tiny random pipeline (Griffin-Lim vocoder, hash text encoder, 12 chroma channels so that the
melody tab exists) makes each generation take a fraction of a second.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from audiodiff.audio import save_audio  # noqa: E402
from audiodiff.conditioning.length import SoundLengthConfig, SoundLengthHead  # noqa: E402
from audiodiff.demo import DemoLimits, build_demo, launch_demo  # noqa: E402
from audiodiff.demo.handlers import DemoRunner  # noqa: E402
from audiodiff.demo.media import drum_clip, melody_clip  # noqa: E402
from audiodiff.pipelines import TextToAudioPipeline  # noqa: E402
from audiodiff.testing import tiny_text_to_audio_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SR = 22050
MODES = ("__call__", "vary", "inpaint", "continuation", "melody")


class CountingPipeline:
    """The real pipeline, counting how many generations run at once (to see the queue work)."""

    def __init__(self, pipe):
        self._pipe = pipe
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def _counted(self, fn, *args, **kwargs):
        with self._lock:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self.active -= 1

    def __call__(self, *args, **kwargs):
        return self._counted(self._pipe, *args, **kwargs)

    def vary(self, *args, **kwargs):
        return self._counted(self._pipe.vary, *args, **kwargs)

    def inpaint(self, *args, **kwargs):
        return self._counted(self._pipe.inpaint, *args, **kwargs)

    def continuation(self, *args, **kwargs):
        return self._counted(self._pipe.continuation, *args, **kwargs)

    def melody(self, *args, **kwargs):
        return self._counted(self._pipe.melody, *args, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, sr


def assert_audio(path, seconds: float, tol_s: float = 0.02) -> np.ndarray:
    wav, sr = read(path)
    assert sr == SR
    assert abs(wav.shape[-1] / sr - seconds) <= tol_s, (wav.shape, seconds)
    assert np.isfinite(wav).all() and np.abs(wav).max() > 1e-3, "silent output"
    return wav


@pytest.fixture(scope="module")
def pipe():
    return tiny_text_to_audio_pipeline(cond_channels=12)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    paths = {
        "melody": save_audio(folder / "melody.wav", torch.from_numpy(melody_clip(SR, 2.0))[None], SR),
        "drums": save_audio(folder / "drums.wav", torch.from_numpy(drum_clip(SR, 2.0))[None], SR),
        "text": folder / "notes.wav",
        "long": folder / "ten_minutes.wav",
    }
    paths["text"].write_text("these are not audio samples\n" * 20)  # named .wav, but text
    sf.write(paths["long"], np.zeros((600 * 8000, 1), np.int16), 8000, subtype="PCM_16")
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def runner(pipe, tmp_path_factory):
    return DemoRunner(pipe, DemoLimits(), tmp_path_factory.mktemp("runner"))


SAMPLING = (4, 3.0, "dpmpp_2m")  # steps, guidance, sampler


# ---------------------------------------------------------------------------- handlers
def test_text_to_audio_handler_result_is_reproducible(runner):
    players, image, settings, code, files = split(runner.text_to_audio(
        "rain on a tin roof", "", 1.0, *SAMPLING, 11, 2), runner.limits.max_batch)
    assert players[2:] == [None, None] and players[:2] == files
    assert settings["sample_rate"] == SR and [i["seed"] for i in settings["items"]] == [11, 12]
    assert [i["prompt"] for i in settings["items"]] == ["rain on a tin roof"] * 2
    assert settings["arguments"]["num_steps"] == 4 and "seed=12" in code
    assert image.size[1] > 2 * 100  # one spectrogram row per clip
    second = assert_audio(files[1], 1.0)
    # Item 1 of the batch is the clip that its reported seed gives on its own.
    alone = split(runner.text_to_audio("rain on a tin roof", "", 1.0, *SAMPLING, 12, 1), 4)[4]
    np.testing.assert_allclose(read(alone[0])[0], second, atol=1e-5)


def test_reproduce_code_loads_the_demos_weights_dtype(tmp_path):
    """A demo serving bf16 weights (what --dtype auto picks on some CPUs) says so in the code it
    shows, and that code's pipeline gives the same clip."""
    folder = tiny_text_to_audio_pipeline(seed=1).save_pretrained(tmp_path / "model")
    bf16 = TextToAudioPipeline.from_pretrained(folder, dtype="bf16")
    runner = DemoRunner(bf16, DemoLimits(), tmp_path / "work")
    _, _, _, code, files = split(runner.text_to_audio("a bell", "", 0.5, *SAMPLING, 5, 1), runner.limits.max_batch)
    assert "from_pretrained(MODEL_DIR, dtype='bf16')" in code
    again = TextToAudioPipeline.from_pretrained(folder, dtype="bf16")("a bell", duration_s=0.5, num_steps=4,
                                                                      guidance_scale=3.0, seed=5)
    np.testing.assert_allclose(read(files[0])[0][0], again.waveforms[0, 0].numpy(), atol=1e-4)
    fp32 = DemoRunner(TextToAudioPipeline.from_pretrained(folder), DemoLimits(), tmp_path / "work32")
    assert "from_pretrained(MODEL_DIR)`" in split(fp32.text_to_audio("a bell", "", 0.5, *SAMPLING, 5, 1), 4)[3]


def test_audio_handlers(runner, clips):
    out = split(runner.vary(clips["drums"], 0.5, "a drum loop", *SAMPLING, 3, 1), 4)
    assert_audio(out[4][0], 2.0)
    assert out[2]["input"]["file"] == "drums.wav" and out[2]["items"][0]["seed"] == 3
    out = split(runner.inpaint(clips["melody"], 0.5, 1.0, "", *SAMPLING, 4, 1), 4)
    assert_audio(out[4][0], 2.0)
    out = split(runner.continuation(clips["drums"], 1.0, "drums", *SAMPLING, 5, 1), 4)
    assert_audio(out[4][0], 3.0)
    out = split(runner.melody(clips["melody"], "a piano", *SAMPLING, 6, 1), 4)
    assert_audio(out[4][0], 2.0)


@pytest.mark.parametrize("call, message", [
    (lambda r, c: r.text_to_audio("   ", "", 1.0, *SAMPLING, 0, 1), "prompt is empty"),
    (lambda r, c: r.text_to_audio("rain", "", 1e6, *SAMPLING, 0, 1), "Duration"),
    (lambda r, c: r.text_to_audio("rain", "", float("nan"), *SAMPLING, 0, 1), "Duration"),
    (lambda r, c: r.text_to_audio("rain", "", 1.0, 10**6, 3.0, "dpmpp_2m", 0, 1), "Steps"),
    (lambda r, c: r.text_to_audio("rain", "", 1.0, 4, 3.0, "magic", 0, 1), "sampler"),
    (lambda r, c: r.text_to_audio("rain", "", 1.0, *SAMPLING, 0, 99), "Batch"),
    (lambda r, c: r.vary(None, 0.5, "", *SAMPLING, 0, 1), "Upload or record"),
    (lambda r, c: r.vary(c["text"], 0.5, "", *SAMPLING, 0, 1), "cannot read notes.wav as audio"),
    (lambda r, c: r.vary(c["long"], 0.5, "", *SAMPLING, 0, 1), "600.0 s long; at most 30 s"),
    (lambda r, c: r.inpaint(c["melody"], 1.5, 0.5, "", *SAMPLING, 0, 1), "must end after it starts"),
    (lambda r, c: r.continuation(c["melody"], 1e9, "", *SAMPLING, 0, 1), "Seconds to add"),
])
def test_bad_input_is_a_readable_error(runner, clips, call, message):
    with pytest.raises(gr.Error, match=message):
        call(runner, clips)


def test_melody_tab_explains_itself_without_a_melody_model():
    demo = build_demo(tiny_text_to_audio_pipeline())  # cond_channels = 0
    api_names = {fn.api_name for fn in demo.fns.values()}
    assert {"generate", "vary", "inpaint", "continue"} <= api_names and "melody" not in api_names
    texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("Melody generation is not available" in str(t) for t in texts)


def test_sound_length_control_only_for_models_with_a_timing_input(runner, tmp_path):
    timed = tiny_text_to_audio_pipeline(timing_channels=1)
    sliders = lambda demo: [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "sound-length"]  # noqa: E731
    assert len(sliders(build_demo(timed))) == 1 and not sliders(build_demo(tiny_text_to_audio_pipeline()))
    timed_runner = DemoRunner(timed, DemoLimits(), tmp_path)
    out = split(timed_runner.text_to_audio("a beep", "", 1.0, *SAMPLING, 3, 1, 0.4), 4)
    assert out[2]["arguments"]["sound_s"] == 0.4 and "sound_s=0.4" in out[3]
    assert "sound_s" not in split(timed_runner.text_to_audio("a beep", "", 1.0, *SAMPLING, 3, 1, 0), 4)[2]["arguments"]
    with pytest.raises(gr.Error, match="Sound length"):
        timed_runner.text_to_audio("a beep", "", 1.0, *SAMPLING, 3, 1, 2.0)  # longer than the clip
    # With a sound length head, 0 means "from the prompt" (the pipeline's default, sound_s="auto").
    headed = TextToAudioPipeline(timed.unet, timed.text, timed.vocoder, timed.config,
                                 SoundLengthHead(SoundLengthConfig(dim=timed.text.config.dim)))
    infos = lambda demo: [b.info for b in sliders(demo)]  # noqa: E731
    assert infos(build_demo(headed)) == ["the sound, then silence; 0 = from the prompt"]
    assert infos(build_demo(timed)) == ["the sound, then silence; 0 = the model decides"]
    settings = split(DemoRunner(headed, DemoLimits(), tmp_path).text_to_audio(
        "a beep", "", 2.0, *SAMPLING, 3, 1, 0), 4)[2]["settings"]
    assert settings["sound_s"] == 1.0 and settings["sound_s_from"] == "prompt"  # an unfitted head: 1 s
    with pytest.raises(gr.Error, match="Sound length"):
        runner.text_to_audio("a beep", "", 1.0, *SAMPLING, 3, 1, 0.5)  # the model has no timing input


def _guided(pipe, timing: bool = False):
    """The tiny pipeline with a guide network (autoguidance 1 by default, 0 in the melody mode,
    as the bundled model), optionally with a timing input."""
    import copy

    if timing:
        pipe = tiny_text_to_audio_pipeline(cond_channels=12, timing_channels=1)
    guide = copy.deepcopy(pipe.unet)
    with torch.no_grad():
        for param in guide.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    config = pipe.config.replace(default_autoguidance=1.0, melody_autoguidance=0.0)
    return TextToAudioPipeline(pipe.unet, pipe.text, pipe.vocoder, config, pipe.sound_length, guide)


def test_autoguidance_control_only_for_models_with_a_guide(pipe, clips, tmp_path):
    """One autoguidance slider per tab for a model with a guide network (the melody tab's at the
    melody mode's default), none without; the handlers pass it on and the call snippet shows it."""
    sliders = lambda demo: [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "autoguidance"]  # noqa: E731
    assert sorted(sliders(build_demo(_guided(pipe)))) == [0.0, 1.0, 1.0, 1.0] and not sliders(build_demo(pipe))
    guided = DemoRunner(_guided(pipe), DemoLimits(), tmp_path)
    out = split(guided.text_to_audio("a beep", "", 1.0, *SAMPLING, 3, 1, 0.0, 2.0), 4)
    assert out[2]["settings"]["autoguidance"] == 2.0 and "autoguidance=2.0" in out[3]
    assert "autoguidance" not in split(guided.vary(clips["drums"], 0.5, "", *SAMPLING, 3, 1, 0.0), 4)[2]["settings"]
    with pytest.raises(gr.Error, match="Autoguidance must be between 0 and 3"):
        guided.melody(clips["melody"], "", *SAMPLING, 3, 1, 9.0)
    with pytest.raises(gr.Error, match="no guide network"):
        DemoRunner(pipe, DemoLimits(), tmp_path).vary(clips["drums"], 0.5, "", *SAMPLING, 3, 1, 1.0)


def test_clips_slider_drives_the_players_even_after_the_sound_length(pipe):
    """The "Clips" slider (not the last input when a sound length or autoguidance follows it)
    is what shows and hides the result players."""
    demo = build_demo(_guided(pipe, timing=True))
    by_label = {}
    for block in demo.blocks.values():
        by_label.setdefault(getattr(block, "label", None), []).append(block._id)
    triggers = {block_id for fn in demo.fns.values() for block_id, _ in fn.targets}
    assert set(by_label["Clips"]) <= triggers
    assert not (set(by_label["Sound length (s)"]) | set(by_label["Autoguidance"])) & triggers


def test_generate_endpoint_of_a_guided_model_without_timing(_guided_server):
    """A guide but no timing input: /generate takes the autoguidance weight last, the sound length
    fixed at "the model decides" and not asked for."""
    client = gradio_client.Client(_guided_server, verbose=False)
    settings = [client.predict("a beep", "", 1.0, 4, 3.0, "dpmpp_2m", 5, 1, w, api_name="/generate")[5]["settings"]
                for w in (0.0, 2.0)]
    assert "autoguidance" not in settings[0] and settings[1]["autoguidance"] == 2.0


@pytest.fixture
def _guided_server(pipe):
    demo = build_demo(_guided(pipe))
    url = launch_demo(demo, port=free_port(), block=False, quiet=True)
    yield url
    demo.close()


def split(outputs: list, max_batch: int):
    return outputs[:max_batch], *outputs[max_batch:]


# ---------------------------------------------------------------------------- the served app
@pytest.fixture(scope="module")
def server(pipe):
    counting = CountingPipeline(pipe)
    demo = build_demo(counting, DemoLimits(concurrency=1))
    url = launch_demo(demo, port=free_port(), block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")
    yield url, counting
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server[0], verbose=False)


def test_every_tab_through_gradio_client(client, clips):
    from gradio_client import handle_file

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/vary", "/inpaint", "/continue", "/melody"} <= set(api)
    steps = (4, 3.0, "dpmpp_2m")
    cases = [
        ("/generate", ("a dog barking", "", 1.5, *steps, 21, 2), 1.5),
        ("/vary", (handle_file(clips["drums"]), 0.4, "drums", *steps, 22, 1), 2.0),
        ("/inpaint", (handle_file(clips["melody"]), 0.5, 1.0, "a bell", *steps, 23, 1), 2.0),
        ("/continue", (handle_file(clips["drums"]), 1.0, "", *steps, 24, 1), 3.0),
        ("/melody", (handle_file(clips["melody"]), "a piano", *steps, 25, 1), 2.0),
    ]
    for api_name, args, seconds in cases:
        result = client.predict(*args, api_name=api_name)
        players, image, settings, code, files = result[:4], result[4], result[5], result[6], result[7]
        assert players[0] and Path(image).is_file() and "```python" in code
        seeds = [item["seed"] for item in settings["items"]]
        assert seeds == [args[-2] + i for i in range(args[-1])], api_name
        assert len(files) == args[-1]
        for player in players[:args[-1]]:
            assert_audio(player, seconds)


def test_eight_clients_at_once_each_get_their_own_result(server):
    url, counting = server
    clients = [gradio_client.Client(url, verbose=False) for _ in range(8)]
    before = counting.calls
    jobs = [c.submit(f"sound number {i}", "", 1.0, 4, 3.0, "dpmpp_2m", 100 + i, 1, api_name="/generate")
            for i, c in enumerate(clients)]
    results = [job.result(timeout=120) for job in jobs]
    for i, result in enumerate(results):
        item = result[5]["items"][0]
        assert item == {**item, "seed": 100 + i, "prompt": f"sound number {i}"}
        assert_audio(result[0], 1.0)
    assert len({r[0] for r in results}) == 8  # eight different files
    assert counting.calls - before == 8
    assert counting.max_active == 1  # the queue held the others back: one generation at a time


def test_bad_requests_get_errors_and_the_server_keeps_serving(client, clips):
    from gradio_client import handle_file

    bad = [
        (("", "", 1.0, 4, 3.0, "dpmpp_2m", 0, 1), "/generate", "prompt is empty"),
        (("rain", "", 1.0, 100000, 3.0, "dpmpp_2m", 0, 1), "/generate", ""),   # past the slider
        (("rain", "", 3600.0, 4, 3.0, "dpmpp_2m", 0, 1), "/generate", ""),
        ((handle_file(clips["text"]), 0.5, "", 4, 3.0, "dpmpp_2m", 0, 1), "/vary", "cannot read"),
        ((handle_file(clips["long"]), 0.5, "", 4, 3.0, "dpmpp_2m", 0, 1), "/vary", "at most 30 s"),
    ]
    for args, api_name, message in bad:
        with pytest.raises(Exception, match=message) as info:
            client.predict(*args, api_name=api_name)
        assert "Traceback" not in str(info.value)
    # Over the upload-size cap (DemoLimits.max_upload_mb = 20): refused before any handler runs.
    # 8 s of stereo float at 384 kHz: short enough for the handler, 24 MiB is too big to upload.
    huge = Path(clips["long"]).with_name("huge.wav")
    sf.write(huge, np.full((3 * 2**20, 2), 0.1, np.float32), 384000, subtype="FLOAT")
    with pytest.raises(Exception, match="(?i)too large|exceeds|size"):
        client.predict(handle_file(str(huge)), 0.5, "", 4, 3.0, "dpmpp_2m", 0, 1, api_name="/vary")
    result = client.predict("still serving", "", 1.0, 4, 3.0, "dpmpp_2m", 7, 1, api_name="/generate")
    assert_audio(result[0], 1.0)


def test_entry_script_serves_a_model_folder(pipe, tmp_path):
    """``python demos/gradio_app.py --model DIR`` loads a saved pipeline and serves the page."""
    model = pipe.save_pretrained(tmp_path / "model")
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "demos" / "gradio_app.py"), "--model", str(model),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200 and b"audiodiff" in response.read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.communicate()[0].decode()[-2000:]) from None
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_has_a_demo_command():
    from audiodiff.cli import build_parser
    from audiodiff.demo.cli import run_demo

    args = build_parser().parse_args(["demo", "--model", "m", "--port", "7999"])
    assert args.func is run_demo and args.host == "127.0.0.1" and args.share is False and args.port == 7999
