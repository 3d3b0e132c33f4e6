"""The simulated upstream: Anthropic and OpenAI wire formats with fault injection (web.sim.server)."""
