"""Networks: the mel and waveform UNet denoisers and the vocoders.

Every model class is registered with the hub here, so ``load_component`` can rebuild it from
its ``config.json``.
"""

from ..hub import register_model
from .unet_mel import UNetMel, UNetMelConfig
from .unet_wave import UNetWave, UNetWaveConfig
from .vocoder import GriffinLim, HiFiGAN, HiFiGANConfig, load_vocoder

register_model(UNetMelConfig)(UNetMel)
register_model(UNetWaveConfig)(UNetWave)

__all__ = ["GriffinLim", "HiFiGAN", "HiFiGANConfig", "UNetMel", "UNetMelConfig", "UNetWave",
           "UNetWaveConfig", "load_vocoder"]
