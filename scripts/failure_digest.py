"""Print the failures of pytest logs, short: for each failed test its header, the lines of
the traceback that name a test file, the ``E`` lines, and the start of each captured section.

scripts/test.sh prints it last, so that the end of a long CI log (all that some CI views
keep) still says why each test failed, whichever of its pytest runs it was in.

    python scripts/failure_digest.py LOG [LOG ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SECTION = re.compile(r"^=+ (FAILURES|ERRORS) =+$")
END = re.compile(
    r"^=+ (warnings summary|short test summary info|slowest \d+ durations|.* in [\d.]+s.*) =+$"
)
TEST_HEADER = re.compile(r"^_+ \S.* _+$")
CAPTURED = re.compile(r"^-+ Captured .* -+$")
#: A traceback line naming a file and line (``tests/x.py:12: AssertionError``).
LOCATION = re.compile(r"^\S+\.py:\d+: ")
#: Lines kept per failed test: its E lines, and the first lines of each captured section.
MAX_ERROR_LINES, MAX_CAPTURED_LINES = 25, 15


def digest(lines: list[str]) -> list[str]:
    out: list[str] = []
    inside = False
    errors = captured = 0
    in_captured = False
    for line in lines:
        if SECTION.match(line):
            inside = True
            continue
        if not inside:
            continue
        if END.match(line):
            inside = False
            continue
        if TEST_HEADER.match(line):
            out.append(line)
            errors, in_captured = 0, False
        elif CAPTURED.match(line):
            out.append(line)
            in_captured, captured = True, 0
        elif in_captured:
            captured += 1
            if captured <= MAX_CAPTURED_LINES:
                out.append(line)
        elif line.startswith("E ") or LOCATION.match(line):
            errors += 1
            if errors <= MAX_ERROR_LINES:
                out.append(line)
    summary = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return out + summary


def main(paths: list[str]) -> None:
    for path in paths:
        lines = Path(path).read_text(errors="replace").splitlines()
        found = digest(lines)
        if found:
            print(f"---- failures in {path} ----")
            print("\n".join(found))


if __name__ == "__main__":
    main(sys.argv[1:])
