"""Instruction embeddings on a decoder LLM (LG-ANNA style): prompts, model, mining, losses."""
