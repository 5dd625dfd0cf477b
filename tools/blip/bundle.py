"""The bundled model: the three BLIP checkpoint classes of the real family, sharing one vision
encoder (the real family has three; a folder whose tasks share one runs it once per image)."""
from __future__ import annotations

from torch import nn

from .model import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                    BlipForQuestionAnswering, TextConfig, VisionConfig, init_weights)


class BlipBundle(nn.Module):
    def __init__(self, config: BlipConfig, share_vision: bool = True):
        super().__init__()
        self.config = config
        self.retrieval = BlipForImageTextRetrieval(config)
        self.caption = BlipForConditionalGeneration(config)
        self.vqa = BlipForQuestionAnswering(config)
        init_weights(self)
        if share_vision:
            self.caption.vision_model = self.retrieval.vision_model
            self.vqa.vision_model = self.retrieval.vision_model


def scenes_config(vocab_size: int, sep: int, dec: int) -> BlipConfig:
    """The bundled model's size: 96 px input, 12 px patches (64 + 1 tokens), width 128."""
    return BlipConfig(
        vision=VisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                            image_size=96, patch_size=12),
        text=TextConfig(vocab_size=vocab_size, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                        num_attention_heads=4, max_position_embeddings=64, encoder_hidden_size=128,
                        sep_token_id=sep, bos_token_id=dec),
        image_text_hidden_size=64,
    )
