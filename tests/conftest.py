import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


# Test models are tiny: one thread avoids oversubscription when pytest shares the machine,
# which made millisecond forwards take seconds. Benchmarks set their own thread counts.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def chirp():
    """A 1.5 s exponential sine sweep at 22.05 kHz, (1, T) float32."""
    sr = 22050
    t = torch.arange(int(1.5 * sr)) / sr
    f0, f1 = 100.0, 6000.0
    k = (f1 / f0) ** (1 / 1.5)
    phase = 2 * torch.pi * f0 * (k**t - 1) / torch.log(torch.tensor(k))
    return (0.5 * torch.sin(phase))[None].float(), sr
