"""Qwen2.5-VL's processor without its video processor (the production class, also the tiny model's)."""

from __future__ import annotations

from transformers import Qwen2_5_VLProcessor


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without its video processor.

    The video processor class needs torchvision, which this project does not depend on; images and
    text are processed by the unchanged parent code, videos raise.
    """

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and argument is None:
            return None
        return super().check_argument_for_proper_class(argument_name, argument)

    def save_pretrained(self, save_directory, **kwargs):
        """The image processor and the tokenizer, which carries the chat template (no video processor)."""
        self.image_processor.save_pretrained(save_directory, **kwargs)
        self.tokenizer.chat_template = self.chat_template
        return self.tokenizer.save_pretrained(save_directory, **kwargs)
