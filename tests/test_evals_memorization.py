"""extraction_strength against hand computation (open-unlearning's definition, its loop residue included)."""

import pytest

from llmkit.evals.memorization import extraction_strength


@pytest.mark.parametrize("generated, want", [
    ([1, 2, 3, 4], 1.0),  # whole target reproduced: k = 0
    ([9, 2, 3, 4], 0.75),  # suffix from index 1 matches: 1 - 1/4
    ([9, 9, 3, 4], 0.5),  # from index 2: 1 - 2/4
    ([1, 2, 9, 4], 0.25),  # only the last token: 1 - 3/4 (an early match does not count)
    ([1, 2, 3, 9], 0.25),  # no suffix matches: open-unlearning's loop stops at k = n - 1, so 1/n, not 0
])
def test_extraction_strength_by_hand(generated, want):
    assert extraction_strength([1, 2, 3, 4], generated) == want


def test_extraction_strength_edge_cases():
    assert extraction_strength([], []) == 0.0  # no target token: open-unlearning scores 0
    assert extraction_strength([7], [7]) == 1.0 and extraction_strength([7], [8]) == 1.0  # n = 1: k is 0 either way
    with pytest.raises(ValueError, match="3 target ids but 2 predicted"):
        extraction_strength([1, 2, 3], [1, 2])
