"""The denoising networks: the DDIM residual U-Net, the DDPM attention U-Net, EMA copies."""

from diffusion_course.networks.attention_unet import build_attention_unet
from diffusion_course.networks.ema import copy_network, update_ema_weights
from diffusion_course.networks.residual_unet import build_residual_unet

__all__ = ["build_attention_unet", "build_residual_unet", "copy_network", "update_ema_weights"]
