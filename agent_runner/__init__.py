"""agent_runner: the program run once per execution (agent loop, model providers, tools)."""
