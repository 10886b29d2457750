"""Built-in plugins: registered through the same `grpo_bench` entry points and hooks as third-party ones."""
