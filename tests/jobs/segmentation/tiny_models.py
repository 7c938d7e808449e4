"""Tiny randomly initialised SAM and SAM 2 checkpoints in Hugging Face format: the model
code runs for real on them in a second, and they segment nothing in particular."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Sam2Config,
    Sam2HieraDetConfig,
    Sam2MaskDecoderConfig,
    Sam2Model,
    Sam2PromptEncoderConfig,
    Sam2VisionConfig,
    SamConfig,
    SamImageProcessorPil,
    SamMaskDecoderConfig,
    SamModel,
    SamProcessor,
    SamPromptEncoderConfig,
    SamVisionConfig,
)


def write_tiny_sam(folder: Path, *, image_size: int, patch: int, processor: bool) -> Path:
    """A SAM of a few thousand random weights in Hugging Face format."""
    vision = SamVisionConfig(
        hidden_size=32,
        output_channels=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        global_attn_indexes=[1],
        mlp_dim=64,
        num_pos_feats=16,
    )
    prompts = SamPromptEncoderConfig(
        hidden_size=32, image_size=image_size, patch_size=patch, mask_input_channels=4
    )
    decoder = SamMaskDecoderConfig(
        hidden_size=32,
        mlp_dim=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        iou_head_hidden_dim=32,
    )
    config = SamConfig(
        vision_config=vision, prompt_encoder_config=prompts, mask_decoder_config=decoder
    )
    torch.manual_seed(0)
    SamModel(config).save_pretrained(folder)
    if processor:
        size = {"longest_edge": image_size}
        pad = {"height": image_size, "width": image_size}
        SamProcessor(SamImageProcessorPil(size=size, pad_size=pad)).save_pretrained(folder)
    return folder


def write_tiny_sam2(folder: Path) -> Path:
    """A SAM 2 with a small Hiera backbone and a 128-px input."""
    backbone = Sam2HieraDetConfig(
        hidden_size=12,
        image_size=128,
        patch_stride=4,
        patch_kernel_size=7,
        patch_padding=3,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 2, 4, 8],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[96, 48, 24, 12],
        backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        fpn_hidden_size=32,
    )
    prompts = Sam2PromptEncoderConfig(
        image_size=128, patch_size=16, mask_input_channels=8, hidden_size=32
    )
    decoder = Sam2MaskDecoderConfig(
        hidden_size=32,
        mlp_dim=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        iou_head_hidden_dim=32,
    )
    config = Sam2Config(
        vision_config=vision, prompt_encoder_config=prompts, mask_decoder_config=decoder
    )
    torch.manual_seed(0)
    Sam2Model(config).save_pretrained(folder)
    return folder
