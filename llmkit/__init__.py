"""llmkit: train, unlearn, embed, evaluate and fit loss curves for decoder LLMs."""

__version__ = "0.1.0"
