"""Small local datasets in the exact schema and layout of the hub datasets rlkit has presets for.

Each is written as a hub repository would hold it -- Parquet files per config and split, and a
README.md whose YAML header lists them -- so ``load_dataset(<directory>, <config>, split=...)``
reads it through the same code path as ``load_dataset(<hub id>, ...)``, with no network.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_hub_repo(root: Path, configs: dict[str, dict[str, list[dict]]]) -> Path:
    """``configs``: config name -> split -> rows. Returns ``root``."""
    header = ["---", "configs:"]
    for config, splits in configs.items():
        header += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            path = root / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows), path)
            header += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join([*header, "---", "", "A local copy in the hub's schema.", ""]))
    return root


def gsm8k_rows(n: int = 8) -> list[dict]:
    """openai/gsm8k (config main): question, answer ending in "#### <number>"."""
    return [{"question": f"Tom has {i} apples and buys {i + 2} more. How many apples does he have?",
             "answer": f"He has {i} + {i + 2} = <<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2} apples.\n#### {2 * i + 2}"}
            for i in range(1, n + 1)]


def gsm8k(root: Path, n: int = 8) -> Path:
    rows = gsm8k_rows(n)
    return write_hub_repo(root, {"main": {"train": rows, "test": rows[: max(2, n // 4)]}})


def math_lighteval(root: Path) -> Path:
    """DigitalLearningGmbH/MATH-lighteval: problem, level, solution (answer boxed), type."""
    rows = [
        {"problem": r"What is $\frac{1}{2} + \frac{1}{4}$?", "level": "Level 1",
         "solution": r"We have $\frac{2}{4} + \frac{1}{4} = \boxed{\frac{3}{4}}$.", "type": "Prealgebra"},
        {"problem": r"Solve $2x = 6$.", "level": "Level 1",
         "solution": r"Dividing by 2, $x = \boxed{3}$.", "type": "Algebra"},
    ]
    return write_hub_repo(root, {"default": {"train": rows, "test": rows[:1]}})


def math500(root: Path) -> Path:
    """HuggingFaceH4/MATH-500: problem, solution, answer, subject, level, unique_id (test only)."""
    rows = [
        {"problem": r"Convert the point $(0,3)$ to polar coordinates.", "solution": r"... $\boxed{\left( 3, \frac{\pi}{2} \right)}$",
         "answer": r"\left( 3, \frac{\pi}{2} \right)", "subject": "Precalculus", "level": 2,
         "unique_id": "test/precalculus/807.json"},
        {"problem": r"What is $\sqrt{8}$ in simplest form?", "solution": r"$\sqrt{8} = \boxed{2\sqrt{2}}$",
         "answer": r"2\sqrt{2}", "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"},
    ]
    return write_hub_repo(root, {"default": {"test": rows}})


def openmathinstruct2(root: Path) -> Path:
    """nvidia/OpenMathInstruct-2: problem, generated_solution, expected_answer, problem_source."""
    rows = [{"problem": f"What is {i} times 3?", "generated_solution": f"{i} times 3 is $\\boxed{{{3 * i}}}$.",
             "expected_answer": str(3 * i), "problem_source": "augmented_gsm8k"} for i in range(1, 11)]
    return write_hub_repo(root, {"default": {"train_1M": rows}})


def _turns(*pairs: tuple[str, str]) -> list[dict]:
    return [{"content": content, "role": role} for role, content in pairs]


def ultrafeedback(root: Path) -> Path:
    """HuggingFaceH4/ultrafeedback_binarized: prompt, prompt_id, chosen/rejected/messages as
    conversations, score_chosen, score_rejected; splits *_prefs, *_sft, *_gen."""
    def row(i: int) -> dict:
        question = f"Name a colour number {i}."
        chosen = _turns(("user", question), ("assistant", f"Blue, number {i}."))
        return {"prompt": question, "prompt_id": f"id{i}", "chosen": chosen,
                "rejected": _turns(("user", question), ("assistant", "I cannot.")),
                "messages": chosen, "score_chosen": 8.0, "score_rejected": 2.0}

    rows = [row(i) for i in range(4)]
    return write_hub_repo(root, {"default": {"train_prefs": rows, "test_prefs": rows[:2],
                                             "train_sft": rows, "test_sft": rows[:2]}})


def hh_rlhf(root: Path) -> Path:
    """trl-lib/hh-rlhf-helpful-base: chosen, rejected as whole multi-turn conversations."""
    def row(i: int) -> dict:
        history = (("user", "Hi there."), ("assistant", "Hello! How can I help?"), ("user", f"What is {i}+1?"))
        return {"chosen": _turns(*history, ("assistant", f"It is {i + 1}.")),
                "rejected": _turns(*history, ("assistant", "Go away."))}

    rows = [row(i) for i in range(4)]
    return write_hub_repo(root, {"default": {"train": rows, "test": rows[:2]}})


def humaneval_rows() -> list[dict]:
    """openai/openai_humaneval (config openai_humaneval, split test): task_id, prompt (imports,
    signature, docstring), canonical_solution (the body), test (METADATA and check(candidate)),
    entry_point."""
    return [
        {"task_id": "HumanEval/0",
         "prompt": 'from typing import List\n\n\ndef below_zero(operations: List[int]) -> bool:\n'
                   '    """ Whether the running balance of the deposits and withdrawals ever falls below zero.\n'
                   '    >>> below_zero([1, 2, -4, 5])\n    True\n    """\n',
         "canonical_solution": "    balance = 0\n    for op in operations:\n        balance += op\n"
                               "        if balance < 0:\n            return True\n    return False\n",
         "test": "\n\nMETADATA = {\n    'author': 'jt',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n"
                 "    assert candidate([]) == False\n    assert candidate([1, 2, -3, 1, 2, -3]) == False\n"
                 "    assert candidate([1, 2, -4, 5, 6]) == True\n    assert candidate([1, -1, 2, -2, 5, -5, 4, -5]) == True\n",
         "entry_point": "below_zero"},
        {"task_id": "HumanEval/1",
         "prompt": 'def sum_squares(n: int) -> int:\n    """ The sum of the squares of 1..n.\n'
                   '    >>> sum_squares(3)\n    14\n    """\n',
         "canonical_solution": "    return sum(i * i for i in range(1, n + 1))\n",
         "test": "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    values = [candidate(n) for n in range(5)]\n"
                 "    assert values == [0, 1, 5, 14, 30]\n    for n in range(5, 50):\n"
                 "        assert candidate(n) == n * (n + 1) * (2 * n + 1) // 6\n",
         "entry_point": "sum_squares"},
    ]


def humaneval(root: Path) -> Path:
    return write_hub_repo(root, {"openai_humaneval": {"test": humaneval_rows()}})


def mbpp_rows() -> list[dict]:
    """google-research-datasets/mbpp (config full): task_id, text, code, test_list (asserts),
    test_setup_code, challenge_test_list."""
    return [
        {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character from the string.",
         "code": "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n"
                 "            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    for i in range(len(s) - 1,-1,-1):  \r\n"
                 "        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    return s ",
         "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"',
                       'assert remove_Occ("PHP","P") == "H"'],
         "test_setup_code": "", "challenge_test_list": ['assert remove_Occ("hellolloll","l") == "helollol"']},
        {"task_id": 12, "text": "Write a function to find the shared elements from the given two lists.",
         "code": "def similar_elements(a, b):\r\n  return tuple(sorted(set(a) & set(b)))",
         "test_list": ["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
                       "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
                       "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"],
         "test_setup_code": "import math", "challenge_test_list": []},
        {"task_id": 14, "text": "Write a python function to find the volume of a triangular prism.",
         "code": "def find_Volume(l,b,h) : \r\n    return ((l * b * h) / 2) ",
         "test_list": ["assert find_Volume(10,8,6) == 240", "assert find_Volume(3,2,2) == 6", "assert find_Volume(1,2,1) == 1"],
         "test_setup_code": "", "challenge_test_list": []},
        {"task_id": 17, "text": "Write a function to find the perimeter of a square.",
         "code": "def square_perimeter(a):\r\n  perimeter=4*a\r\n  return perimeter",
         "test_list": ["assert square_perimeter(10)==40", "assert square_perimeter(5)==20", "assert square_perimeter(4)==16"],
         "test_setup_code": "", "challenge_test_list": []},
    ]


def mbpp(root: Path) -> Path:
    rows = mbpp_rows()
    return write_hub_repo(root, {"full": {"train": rows, "test": rows[:1]}})
