"""The model side: backbone, tokenizer, prompts, encoding, poolings and heads, one strategy per head type, shared-prefix COND_GEN, adapters, option matching."""
