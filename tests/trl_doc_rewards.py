"""The example reward functions of TRL's GRPOTrainer documentation (huggingface.co/docs/trl/grpo_trainer,
"Using a custom reward function"), kept exactly as the documentation shows them: they are the test
that TRL rewards plug in unchanged. Module-level, so they travel to the reward workers by reference."""

import re

from math_verify import LatexExtractionConfig, parse, verify


def reward_len(completions, **kwargs):
    return [-abs(20 - len(completion)) for completion in completions]


def format_reward_func(completions, **kwargs):
    """Reward function that checks if the completion has a specific format."""
    pattern = r"^<think>.*?</think><answer>.*?</answer>$"
    completion_contents = [completion[0]["content"] for completion in completions]
    matches = [re.match(pattern, content) for content in completion_contents]
    return [1.0 if match else 0.0 for match in matches]


def reward_func(completions, ground_truth, **kwargs):
    # Regular expression to capture content inside \boxed{}
    matches = [re.search(r"\\boxed\{(.*?)\}", completion) for completion in completions]
    contents = [match.group(1) if match else "" for match in matches]
    # Reward 1 if the content is the same as the ground truth, 0 otherwise
    return [1.0 if c == gt else 0.0 for c, gt in zip(contents, ground_truth)]


def accuracy_reward(completions, solution, **kwargs):
    """Reward function that checks if the completion matches the ground truth."""
    rewards = []
    for completion, sol in zip(completions, solution):
        content = completion[0]["content"]
        gold_parsed = parse(sol, extraction_mode="first_match", extraction_config=[LatexExtractionConfig()])
        answer_parsed = parse(content, extraction_mode="first_match", extraction_config=[LatexExtractionConfig()])
        if len(gold_parsed) != 0:
            try:
                rewards.append(float(verify(answer_parsed, gold_parsed)))
            except Exception:
                rewards.append(0.0)
        else:
            rewards.append(1.0)
    return rewards


def uses_state_and_ids(completions, completion_ids, trainer_state, **kwargs):
    """Not from TRL: reads the two extra arguments TRL passes (huggingface/trl#3668, #3272)."""
    return [trainer_state.global_step + len(ids) / 100 for ids in completion_ids]
