"""harness=lm_eval: EleutherAI's lm-evaluation-harness on a model directory, with task
definitions of our own over local files (a multiple-choice task scored by log-likelihood, as
MMLU and HellaSwag are, and a generation task scored by exact match, as GSM8K is)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("lm_eval", reason="the lm-eval extra (part of dev) is not installed")

DOCS = [{"question": f"What is {a} + {b}?", "choices": [str(a + b + d) for d in ((0, 3, 7), (3, 0, 7), (7, 3, 0))[i % 3]],
         "answer": i % 3, "target": str(a + b)} for i, (a, b) in enumerate((a, b) for a in range(4) for b in range(3))]
MC_TASK = """task: rlkit_local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
GEN_TASK = """task: rlkit_local_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-eval-tasks")
    data = root / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (root / "tasks").mkdir()
    (root / "tasks" / "mc.yaml").write_text(MC_TASK.format(data=data))
    (root / "tasks" / "gen.yaml").write_text(GEN_TASK.format(data=data))
    return root / "tasks"


def choice_accuracy(model_dir) -> float:
    """Multiple-choice accuracy computed here: the choice whose tokens after "Q: ...\\nA:" and a
    space have the highest summed log-probability (lm-eval's acc)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)
    correct = 0
    for doc in DOCS:
        context = f"Q: {doc['question']}\nA:"
        scores = []
        for choice in doc["choices"]:
            context_ids = tokenizer(context, add_special_tokens=False).input_ids
            whole = tokenizer(context + " " + choice, add_special_tokens=False).input_ids
            with torch.no_grad():
                logits = model(torch.tensor([whole])).logits[0].log_softmax(-1)
            scores.append(sum(logits[i - 1, whole[i]].item() for i in range(len(context_ids), len(whole))))
        correct += max(range(len(scores)), key=scores.__getitem__) == doc["answer"]
    return correct / len(DOCS)


@pytest.mark.slow
def test_lm_eval_on_local_tasks_through_the_cli(tiny_model_dir, tasks, tmp_path):
    run_dir = tmp_path / "eval"
    command = [sys.executable, "-m", "rlkit.evaluate", f"model.name_or_path={tiny_model_dir}", "model.dtype=float32",
               "harness=lm_eval", "harness.tasks=[rlkit_local_mc,rlkit_local_gen]", f"harness.include_path={tasks}",
               "harness.batch_size=4", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "eval_harness.json").read_text())
    assert record["results"]["rlkit_local_mc"]["acc,none"] == pytest.approx(choice_accuracy(tiny_model_dir))
    assert 0.0 <= record["results"]["rlkit_local_gen"]["exact_match,none"] <= 1.0
    assert record["config"]["model_args"]["pretrained"] == str(tiny_model_dir)


def test_unknown_task_names_the_key(tiny_model_dir, tasks, tmp_path):
    from rlkit.benchmarks.lm_eval import LmEvalConfig, run_lm_eval
    from rlkit.config import ModelConfig

    config = LmEvalConfig(tasks=["rlkit_local_mc", "no_such_task"], include_path=str(tasks))
    with pytest.raises(ValueError, match="harness.tasks: unknown task.s. no_such_task"):
        run_lm_eval(config, ModelConfig(name_or_path=str(tiny_model_dir)), str(tiny_model_dir), tmp_path)
