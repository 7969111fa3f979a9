"""MC-VQA workbench on PaliGemma 2: three answer heads, one predictor, a Gradio app."""
