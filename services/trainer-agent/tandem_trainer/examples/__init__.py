"""Small, runnable entry points: a tiny GRPO step and reward functions
(used by the integration tests and as templates)."""
