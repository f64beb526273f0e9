"""llmvs: video summarization with large language models (LLMVS, CVPR 2025), end to end."""

__version__ = "0.1.0"


class LlmvsError(Exception):
    """A problem with the user's input or configuration, reported as one clear line."""
