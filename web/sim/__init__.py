"""The simulated upstream: Anthropic, OpenAI and Gemini wire formats with fault injection
(web.sim.server).

How a client reaches it: each provider's SDK ``base_url`` is the simulator's URL plus
``SIM_PATHS[provider]``, and the key it sends is always ``SIM_PLACEHOLDER_KEY``: real keys never
travel to a simulator (it may be remote, over plain HTTP).
"""

from __future__ import annotations

SIM_PATHS = {"anthropic": "/anthropic", "openai": "/openai/v1", "gemini": "/gemini/"}
SIM_PLACEHOLDER_KEY = "sim-placeholder-key"


def sim_base_url(sim_url: str, provider: str) -> str:
    return sim_url.rstrip("/") + SIM_PATHS[provider]
