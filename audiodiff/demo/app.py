"""The Gradio web demo: one tab per way of making audio, all through the public pipeline API.

    >>> from audiodiff.demo import build_demo, launch_demo
    >>> demo = build_demo(TextToAudioPipeline.from_pretrained("MODEL_DIR"))
    >>> launch_demo(demo)                         # http://127.0.0.1:7860, this machine only

Generations from every tab share one queue with a concurrency limit (``DemoLimits.concurrency``);
the page loads nothing from outside hosts (local fonts, no analytics, no server-side rendering).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from .handlers import MAX_AUTOGUIDANCE, DemoLimits, DemoRunner
from .media import write_example_clips

INTRO = """# audiodiff
Generate sound from a text description, vary or extend a clip, or follow a melody.
Every result lists its seed and settings, so the same call gives the same audio again."""

TEXT_EXAMPLES = [
    ("heavy rain falling on a roof", "", 5.0),
    ("a dog barking in the distance", "music", 4.0),
    ("glass shattering on a tile floor", "", 3.0),
    ("a church bell ringing", "", 6.0),
]


def _sampling_controls(runner: DemoRunner, open: bool = False, melody: bool = False
                       ) -> tuple[list[gr.components.Component], list[gr.components.Component]]:
    """Steps, guidance, sampler, seed and batch size: the same controls in every tab; and, for a
    model with a guide network, its autoguidance weight (the mode's default: ``melody``), which
    goes last among a tab's inputs so that each endpoint keeps its arguments for every model."""
    limits = runner.limits
    with gr.Accordion("Sampling", open=open):
        with gr.Row():
            steps = gr.Slider(1, limits.max_steps, value=runner.default_steps, step=1, label="Steps")
            guidance = gr.Slider(0.0, 20.0, value=runner.default_guidance, step=0.5, label="Guidance",
                                 info="0 ignores the prompt; higher follows it more closely")
        with gr.Row():
            sampler = gr.Dropdown(runner.samplers, value=runner.default_sampler, label="Sampler")
            seed = gr.Number(-1, precision=0, minimum=-1, maximum=2**31 - 1, label="Seed",
                             info="-1 picks a random one (reported with the result)")
            batch = gr.Slider(1, limits.max_batch, value=1, step=1, label="Clips")
        auto = []
        if runner.has_guide:
            default = runner.default_melody_autoguidance if melody else runner.default_autoguidance
            auto = [gr.Slider(0.0, MAX_AUTOGUIDANCE, value=default, step=0.25, label="Autoguidance",
                              elem_id="autoguidance",
                              info="steers away from the model's weaker guide network; 0 = off, faster")]
    return [steps, guidance, sampler, seed, batch], auto


def _result_panel(runner: DemoRunner, tab: str) -> list[gr.components.Component]:
    """One player per clip, the spectrogram, settings + seeds, the reproducing call, the files."""
    players = [gr.Audio(type="filepath", label=f"Clip {i + 1}", interactive=False, visible=i == 0,
                        buttons=["download"], elem_id=f"{tab}-clip-{i}")
               for i in range(runner.limits.max_batch)]
    image = gr.Image(type="pil", format="png", label="Mel spectrogram", interactive=False,
                     buttons=["download", "fullscreen"], elem_id=f"{tab}-spectrogram")
    settings = gr.JSON(label="Settings and seeds", elem_id=f"{tab}-settings")
    code = gr.Markdown()
    files = gr.File(label="Download", file_count="multiple", interactive=False, elem_id=f"{tab}-files")
    return [*players, image, settings, code, files]


def _upload(label: str, tab: str) -> gr.Audio:
    return gr.Audio(sources=["upload", "microphone"], type="filepath", label=label, elem_id=f"{tab}-audio",
                    buttons=["download"])


def _bind(button: gr.Button, fn, inputs, outputs, api_name: str, limits: DemoLimits,
          batch: gr.Slider) -> None:
    """Wire a tab's button to its handler, and its "Clips" slider to the number of players."""
    # One concurrency id for every tab: the limit counts generations, not per-tab events.
    button.click(fn, inputs=inputs, outputs=outputs, api_name=api_name,
                 concurrency_id="pipeline", concurrency_limit=limits.concurrency)
    players = outputs[:limits.max_batch]
    batch.change(lambda n: [gr.update(visible=i < n) for i in range(len(players))], batch, players,
                 queue=False, api_visibility="private")


def build_demo(pipeline: Any, limits: DemoLimits | None = None) -> gr.Blocks:
    """A ``gr.Blocks`` app over ``pipeline`` (a ``TextToAudioPipeline``); queue configured.

    API names (for ``gradio_client``): /generate, /vary, /inpaint, /continue and, when the model
    has melody conditioning, /melody.
    """
    limits = limits or DemoLimits()
    workdir = Path(tempfile.mkdtemp(prefix="audiodiff-demo-"))
    runner = DemoRunner(pipeline, limits, workdir)
    clips = write_example_clips(workdir / "examples", pipeline.sample_rate)
    steps = runner.default_steps

    with gr.Blocks(title="audiodiff", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Text to audio", id="text"):
                with gr.Row():
                    with gr.Column():
                        prompt = gr.Textbox(label="Prompt", placeholder="heavy rain falling on a roof",
                                            elem_id="prompt")
                        negative = gr.Textbox(label="Negative prompt", placeholder="what to avoid, e.g. music")
                        duration = gr.Slider(runner.min_duration_s, runner.max_duration_s, step=0.1,
                                             value=runner.default_duration_s, label="Duration (s)")
                        timing = []
                        if runner.has_timing:
                            timing = [gr.Slider(0.0, runner.max_duration_s, step=0.1, value=0.0,
                                                label="Sound length (s)", elem_id="sound-length",
                                                info="the sound, then silence; 0 = "
                                                + ("from the prompt" if runner.pipeline.sound_length is not None
                                                   else "the model decides"))]
                        controls, auto = _sampling_controls(runner, open=True)
                        button = gr.Button("Generate", variant="primary", elem_id="generate")
                    with gr.Column():
                        outputs = _result_panel(runner, "text")
                # The sound length and autoguidance go last, so /generate keeps its arguments for
                # every model (a model with a guide but no timing input gets a fixed "0" there).
                fixed = [gr.State(0.0)] if auto and not timing else []
                inputs = [prompt, negative, duration, *controls, *timing, *fixed, *auto]
                weight = [a.value for a in auto]  # the examples run at the slider's default
                gr.Examples([[p, n, min(d, runner.max_duration_s), steps, runner.default_guidance,
                              runner.default_sampler, i, 1, *[0.0] * len(timing), *weight]
                             for i, (p, n, d) in enumerate(TEXT_EXAMPLES)],
                            inputs=[prompt, negative, duration, *controls, *timing, *auto], cache_examples=False)
                _bind(button, runner.text_to_audio, inputs, outputs, "generate", limits, controls[-1])

            with gr.Tab("Variation", id="vary"):
                with gr.Row():
                    with gr.Column():
                        audio = _upload("Audio to vary (upload or record)", "vary")
                        strength = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Strength",
                                             info="0 returns the input; 1 keeps nothing of it")
                        prompt = gr.Textbox(label="Prompt (optional)", placeholder="a drum loop", elem_id="vary-prompt")
                        controls, auto = _sampling_controls(runner)
                        button = gr.Button("Make variations", variant="primary", elem_id="vary-button")
                    with gr.Column():
                        outputs = _result_panel(runner, "vary")
                inputs = [audio, strength, prompt, *controls, *auto]
                gr.Examples([[clips["drum_loop"], 0.5, "a drum loop", steps, runner.default_guidance,
                              runner.default_sampler, 0, 2, *[a.value for a in auto]]],
                            inputs=inputs, cache_examples=False)
                _bind(button, runner.vary, inputs, outputs, "vary", limits, controls[-1])

            with gr.Tab("Inpaint / continue", id="inpaint"):
                with gr.Row():
                    with gr.Column():
                        audio = _upload("Audio (upload or record)", "inpaint")
                        prompt = gr.Textbox(label="Prompt (optional)", placeholder="a bell", elem_id="inpaint-prompt")
                        with gr.Row():
                            start = gr.Number(1.0, minimum=0, label="Region start (s)")
                            end = gr.Number(2.0, minimum=0, label="Region end (s)")
                        inpaint_button = gr.Button("Inpaint region", variant="primary", elem_id="inpaint-button")
                        seconds = gr.Slider(0.5, limits.max_add_s, value=2.0, step=0.5, label="Seconds to add")
                        continue_button = gr.Button("Continue", variant="primary", elem_id="continue-button")
                        controls, auto = _sampling_controls(runner)
                    with gr.Column():
                        outputs = _result_panel(runner, "inpaint")
                weight = [a.value for a in auto]
                inpaint_inputs = [audio, start, end, prompt, *controls, *auto]
                gr.Examples([[clips["arpeggio"], 1.5, 2.5, "a bell", steps, runner.default_guidance,
                              runner.default_sampler, 0, 1, *weight]], inputs=inpaint_inputs, cache_examples=False,
                            label="Example: inpaint")
                continue_inputs = [audio, seconds, prompt, *controls, *auto]
                gr.Examples([[clips["drum_loop"], 2.0, "a drum loop", steps, runner.default_guidance,
                              runner.default_sampler, 0, 1, *weight]], inputs=continue_inputs, cache_examples=False,
                            label="Example: continue")
                _bind(inpaint_button, runner.inpaint, inpaint_inputs, outputs, "inpaint", limits, controls[-1])
                _bind(continue_button, runner.continuation, continue_inputs, outputs, "continue", limits,
                      controls[-1])

            with gr.Tab("Melody", id="melody"):
                if runner.has_melody:
                    with gr.Row():
                        with gr.Column():
                            audio = _upload("Melody (upload, record or hum)", "melody")
                            prompt = gr.Textbox(label="Prompt", placeholder="a piano playing a melody",
                                                elem_id="melody-prompt")
                            controls, auto = _sampling_controls(runner, melody=True)
                            button = gr.Button("Generate from melody", variant="primary", elem_id="melody-button")
                        with gr.Column():
                            outputs = _result_panel(runner, "melody")
                    inputs = [audio, prompt, *controls, *auto]
                    gr.Examples([[clips["arpeggio"], "a piano playing a melody", steps, runner.default_guidance,
                                  runner.default_sampler, 0, 1, *[a.value for a in auto]]],
                                inputs=inputs, cache_examples=False)
                    _bind(button, runner.melody, inputs, outputs, "melody", limits, controls[-1])
                else:
                    gr.Markdown(
                        "**Melody generation is not available with this model.** It needs a model trained "
                        "with melody conditioning (12 chroma channels, `unet.config.cond_channels == 12`); "
                        f"this one has {pipeline.unet.config.cond_channels}. Train one with a melody "
                        "config (`configs/`) and start the demo with `--model` pointing at it.")
        gr.Markdown(f"Limits on this server: up to {runner.max_duration_s:g} s generated, "
                    f"{limits.max_steps} steps, {limits.max_batch} clips per request, uploads up to "
                    f"{limits.max_upload_s:g} s and {limits.max_upload_mb} MB.")
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    demo.audiodiff_limits = limits  # read by launch_demo for the upload-size cap
    return demo


def launch_demo(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
                block: bool = True, quiet: bool = False) -> str:
    """Serve ``demo``; returns its local URL (with ``block=False`` the server runs in a thread).

    Only this machine can connect unless ``host`` says otherwise; ``share=True`` opens a public
    gradio.live tunnel and must be asked for explicitly.
    """
    limits = getattr(demo, "audiodiff_limits", None) or DemoLimits()
    result = demo.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
        max_file_size=f"{limits.max_upload_mb}mb", quiet=quiet,
        ssr_mode=False, mcp_server=False, pwa=False, footer_links=["api"],  # nothing from outside
    )
    _, url, share_url = result if result else (None, demo.local_url, demo.share_url)
    return share_url or url
