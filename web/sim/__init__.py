"""The simulated upstream: Anthropic, OpenAI and Gemini wire formats with fault injection
(web.sim.server).

How a client reaches it: each provider's SDK ``base_url`` is the simulator's URL plus
``SIM_PATHS[provider]``, and the key it sends is always ``SIM_PLACEHOLDER_KEY``: real keys never
travel to a simulator (it may be remote, over plain HTTP).
"""

from __future__ import annotations

SIM_PATHS = {"anthropic": "/anthropic", "openai": "/openai/v1", "gemini": "/gemini/"}
SIM_PLACEHOLDER_KEY = "sim-placeholder-key"
REVOKED_KEY = "sk-understudy-revoked-by-drill"
"""The key a `primary-key-revoked` drill sends (web.drills): the simulator refuses it with the
provider's own 401, as the provider itself refuses a revoked key."""


def accepted_key(value: str) -> bool:
    """Any key but none, blanks and the revoked one: the simulator checks no more."""
    value = value.strip()
    return bool(value) and value != REVOKED_KEY


def sim_base_url(sim_url: str, provider: str) -> str:
    return sim_url.rstrip("/") + SIM_PATHS[provider]
